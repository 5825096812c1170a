"""brokerflow: approval workflows and a serial-numbered document archive for brokerage branches.

One installed namespace; each top-level folder of the repository is one layer or domain,
imports point down only (``docs/architecture.md``, checked by import-linter):

    brokerflow.app         the shell: command line, archive page, local stack, serving
    brokerflow.flows       Prefect flows that compose the domains
    brokerflow.approvals | brokerflow.archive | brokerflow.payroll    the domains
    brokerflow.kernel      settings, errors, database, identity, rendering, vocabulary

``brokerflow.templates`` and ``brokerflow.policy`` hold data (document templates, the default
pay policy).  This package imports nothing.
"""
