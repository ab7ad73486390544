"""The database's performance review and maintenance: what PostgreSQL is asked, its SQL, and the judgement on paper."""
