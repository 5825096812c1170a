"""The kernel every layer stands on: settings, the error tree, the database and its models,
identity (roster), document rendering and failpoints."""
