"""The CLI's command groups, one module each; `winback.app.cli` registers them."""
