"""The `winback` command's groups: each module exposes `app` (a typer.Typer) that `winback.app.cli` adds.

A new group is a module here and one `app.add_typer(...)` line in `winback/app/cli.py`.
"""
