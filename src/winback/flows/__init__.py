"""Prefect flows and tasks: thin orchestration over the plain functions of the layers below."""
