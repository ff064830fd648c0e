"""PostgreSQL: the connection pool, migrations and the task store."""
