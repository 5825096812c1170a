"""Prefect flows: the filing chain (``filing``), approval reminders (``reminders``) and the
render-and-archive building block (``archive_document``)."""
