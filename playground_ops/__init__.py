"""playground-ops: the AI API Playground's maintenance guide as Prefect 3 runbooks."""

__version__ = "0.1.0"
