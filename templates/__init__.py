"""Document templates (Jinja2, one per document type) and the archive page templates: data."""
