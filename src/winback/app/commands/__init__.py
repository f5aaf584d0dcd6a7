"""Groups of `winback` subcommands, each a typer app registered by app/cli.py."""
