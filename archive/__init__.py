"""The document archive: serial numbers, object store, index, access rules, integrity."""
