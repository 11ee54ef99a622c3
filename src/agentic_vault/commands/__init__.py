"""The ``agentic-vault`` subcommands, one module per group; ``_cli`` registers them."""
