"""Sample data: a roster and a CRM export for the demo and the tests."""
