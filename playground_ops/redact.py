"""Keep secrets out of anything an operator or an auditor reads: URLs lose their passwords, known values are blanked."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@", re.I)
_registered: set[str] = set()


def mask_url(url: str | None) -> str | None:
    """The URL with any password replaced by ***; safe to show anywhere."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:{MASK}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def register_secret(*values: str | None) -> None:
    """Remember secret values so that redact() blanks them wherever they turn up."""
    for value in values:
        if value and len(value) >= 4:
            _registered.add(value)
            parts = urlsplit(value) if "://" in value else None
            if parts is not None and parts.password and len(parts.password) >= 4:
                _registered.add(parts.password)


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """Text with URL passwords and every registered secret value replaced by ***."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    for value in sorted({*_registered, *(e for e in extra if e)}, key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


class RedactingFilter:
    """A logging filter that blanks secrets in every record it passes (Prefect's API and console handlers)."""

    def filter(self, record) -> bool:  # noqa: A003 - logging's name
        try:
            message = record.getMessage()
        except Exception:
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info and record.exc_info[1] is not None:
            text = redact(str(record.exc_info[1]))
            if text != str(record.exc_info[1]):
                record.exc_info = None
                record.msg = f"{record.msg} ({text})"
        return True


def install_log_redaction() -> None:
    """Attach the redacting filter to every handler Prefect logs through; calling it again adds nothing."""
    import logging

    names = ["", "prefect", "prefect.flow_runs", "prefect.task_runs"]
    for name in names:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())
