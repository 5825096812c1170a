"""The database's schema history (Alembic): ``versions/`` holds one migration per change.

The product migrates on start (``brokerflow.kernel.db.open_database``).  A developer who
changes a model writes the next migration with
``alembic -c kernel/migrations/alembic.ini revision --autogenerate -m "what changed"``
(against a database at head, named by ``BROKERFLOW_DATABASE_URL``) and reviews it.
"""
