"""The shell around the engine: the `winback` command, the web server, the demo and the Prefect runtime."""
