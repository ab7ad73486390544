"""The sandbox: a stand-in AI API Playground (database, Redis, backend) to run every runbook against."""
