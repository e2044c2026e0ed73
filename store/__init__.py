"""The store: data model, engine and sessions, migrations, shared query helpers."""
