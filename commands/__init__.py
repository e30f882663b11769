"""Click commands, one module per group (cli.py keeps the root group)."""
