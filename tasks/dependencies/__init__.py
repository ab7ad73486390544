"""Dependency updates and security audits: the steps, npm, Python, git, pull requests, the policy and the report."""
