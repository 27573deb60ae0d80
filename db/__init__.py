"""Storage: models, engine and session factory, migrations."""
