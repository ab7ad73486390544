"""The one error type an operator sees for bad input: it names the thing and the expected form."""


class ConfigError(ValueError):
    """A setting, target or parameter is missing or malformed; raised before anything is changed."""

    def __init__(self, name: str, expected: str, got: str | None = None):
        self.name = name
        self.expected = expected
        self.got = got
        detail = f" (got {got})" if got is not None else ""
        super().__init__(f"{name}: expected {expected}{detail}")


SECRET_HINTS = ("url", "secret", "token", "key", "password", "dsn")


def expected_form(err: dict) -> str:
    """What a pydantic error means, said as the expected form (never the validation library's own wording)."""
    kind, ctx = err.get("type", ""), err.get("ctx") or {}
    message = str(err.get("msg", "")).removeprefix("Value error, ")
    if "expected " in message:  # our own validators already say it
        form = message.split("expected ", 1)[1]
        return form.rsplit(" (got ", 1)[0] if form.endswith(")") and " (got " in form else form
    forms = {
        "int_parsing": "a whole number", "int_type": "a whole number", "int_from_float": "a whole number",
        "float_parsing": "a number", "float_type": "a number", "bool_parsing": "true or false",
        "bool_type": "true or false", "string_type": "text", "list_type": "a list", "dict_type": "a mapping",
        "missing": "a value (it is required)", "extra_forbidden": "no such field (it is not one this place takes)",
        "url_parsing": "a URL", "datetime_parsing": "an ISO date and time", "date_parsing": "an ISO date",
    }
    if kind == "greater_than_equal":
        return f"a value of at least {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"a value of at most {ctx.get('le')}"
    if kind == "greater_than":
        return f"a value above {ctx.get('gt')}"
    if kind == "less_than":
        return f"a value below {ctx.get('lt')}"
    if kind in ("literal_error", "enum"):
        return f"one of {ctx.get('expected', '')}".replace("'", "")
    if kind == "string_too_long":
        return f"text of at most {ctx.get('max_length')} characters"
    if kind == "string_pattern_mismatch":
        return f"text matching {ctx.get('pattern')}"
    return forms.get(kind, message.rstrip(".").lower() or "a valid value")


def shown_value(name: str, err: dict) -> str | None:
    """The offending value to show beside the error, or None where it may be a secret."""
    if any(hint in name.lower() for hint in SECRET_HINTS) or err.get("type") == "missing":
        return None
    value = err.get("input")
    if isinstance(value, (dict, list)) or value is None:
        return None
    text = str(value)
    return text if len(text) <= 80 else text[:80] + "..."


def yaml_problem(exc: Exception, path: object) -> str:
    """A YAML error as `file, line L, column C: problem` (lines and columns counted from 1)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or type(exc).__name__
    where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None else str(path)
    return f"{where}: {problem}"


class Checked:
    """A runbook parameter's own check that needs no I/O, in its annotation (`Annotated[str | None, Checked(f)]`):
    the CLI runs it before a run exists (one line, exit 2, no run, no notification); the runbook runs the same rule
    again inside, for runs started from the UI, and stores a failed report. Pydantic and Prefect ignore it."""

    def __init__(self, check) -> None:
        self.check = check

    def __repr__(self) -> str:
        return f"Checked({getattr(self.check, '__name__', self.check)})"

    @staticmethod
    def run_all(annotation, value) -> None:
        """Every Checked rule in a parameter's annotation, on its value (None: the default, nothing to check)."""
        for check in getattr(annotation, "__metadata__", ()):
            if isinstance(check, Checked) and value is not None:
                check.check(value)
