"""Every SQL statement of Order Bell: tables, migrations, repositories and the queue."""
