"""Backups of the database: the dump pipeline, the store, the policy on paper, the pg tools and the archive reader."""
