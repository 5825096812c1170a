"""Monthly customer-manager payroll: policy, CRM export, pure pay rules, result formats.

Nothing on this path imports Prefect: ``brokerflow payroll compute`` needs no server.
"""
