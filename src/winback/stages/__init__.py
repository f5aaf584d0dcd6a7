"""The pipeline stages as plain functions over an engine: what the flows orchestrate, testable without Prefect."""
