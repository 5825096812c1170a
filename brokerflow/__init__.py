"""brokerflow core: settings, database, roster, rendering, command line."""
