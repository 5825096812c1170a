"""The approval engine: chains as data (``chain``), forms and their descriptions (``forms``),
decisions, waiting steps, reminders and the Prefect pause/suspend seam (``engine``), the
hash-chained audit log (``audit``) and filing requests (``filings``)."""
