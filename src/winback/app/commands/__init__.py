"""Subcommands of `winback` that live in their own modules, each registered in app/cli.py."""
