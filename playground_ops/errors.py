"""The one error type an operator sees for bad input: it names the thing and the expected form."""


class ConfigError(ValueError):
    """A setting, target or parameter is missing or malformed; raised before anything is changed."""

    def __init__(self, name: str, expected: str, got: str | None = None):
        self.name = name
        self.expected = expected
        detail = f" (got {got})" if got is not None else ""
        super().__init__(f"{name}: expected {expected}{detail}")
