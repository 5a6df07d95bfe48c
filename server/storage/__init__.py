"""Storage: SQLAlchemy tables, the async engine, and Alembic migrations."""
