"""Helpers the tests share: real services as processes, chain drivers, data builders, paths.
Imported by the tests and by ``conftest.py`` (which holds only fixtures)."""
