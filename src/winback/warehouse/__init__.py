"""The customer's source tables (read only) and winback's own state: models, migrations, queries, outbox."""
