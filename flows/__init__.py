"""Prefect flows: archiving now; filing chain, attribution and payroll in later issues."""
