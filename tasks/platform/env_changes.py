"""Environment-variable changes on paper (pure): a request checked against what is allowed, and the change it makes
shown as fingerprints (the first 8 hex characters of each value's SHA-256), never as values."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from playground_ops.errors import ConfigError
from playground_ops.settings import ENV_KEY, EnvPolicy


def fingerprint(value: str | None) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:8] if value is not None else ""


# The longest value playground-ops writes to an environment variable (its own limit, stated in the README): a
# setting is a key or a URL, not a file; a larger one is refused before anything is written.
MAX_VALUE_BYTES = 8 * 1024


def check_value_sizes(values: dict[str, str]) -> None:
    """A ConfigError naming each value longer than MAX_VALUE_BYTES (its size only, never the value)."""
    large = sorted(k for k, v in values.items() if len(v.encode()) > MAX_VALUE_BYTES)
    if large:
        raise ConfigError("environment-variables set", f"values of at most {MAX_VALUE_BYTES} bytes",
                          got=", ".join(f"{k}: {len(values[k].encode())} bytes" for k in large))


def check_env_request(action: str, values: dict[str, str], secret_blocks: dict[str, str], keys: list[str],
                      policy: EnvPolicy) -> None:
    """One clear ConfigError for a request that is not allowed, before anything is read or written (the CLI runs it
    before a run exists, so a plain value refused here is never stored as a run's parameter)."""
    for name in [*values, *secret_blocks, *keys]:
        if not ENV_KEY.match(str(name)):
            raise ConfigError("environment-variables", "names such as NODE_ENV", got=repr(name)[:140])
    if action == "set":
        if not values and not secret_blocks:
            raise ConfigError("environment-variables set", "values (non-secret keys) or secret_blocks")
        secret = sorted(k for k in values if k not in policy.non_secret)
        if secret:
            raise ConfigError(f"environment-variables set: {', '.join(secret)} is not declared non-secret",
                              "its value in a Prefect Secret block named in secret_blocks, never as a plain value")
        both = sorted(set(values) & set(secret_blocks))
        if both:
            raise ConfigError("environment-variables set", "each key once (in values or in secret_blocks)",
                              got=", ".join(both))
        check_value_sizes(values)
    if action == "unset":
        if not keys:
            raise ConfigError("environment-variables unset", "keys")
        required = sorted(k for k in keys if k in policy.required)
        if required:
            raise ConfigError(f"environment-variables unset: {', '.join(required)} is required by the application",
                              "keys the target's env.required does not list")


@dataclass
class EnvChange:
    rows: list[dict[str, Any]] = field(default_factory=list)   # key, change, before, after (fingerprints)

    @property
    def keys(self) -> list[str]:
        return [r["key"] for r in self.rows if r["change"] != "unchanged"]

    @property
    def expected(self) -> dict[str, str]:
        """What each touched key's fingerprint must read back as ("" for removed)."""
        return {r["key"]: r["after"] for r in self.rows if r["change"] != "unchanged"}


def plan_env_change(live: dict[str, str], action: str, new: dict[str, str], keys: list[str]) -> EnvChange:
    """live: key -> fingerprint now; new: key -> fingerprint to set. Added, changed, unchanged or removed, per key;
    unsetting a key the service does not have is refused."""
    change = EnvChange()
    if action == "set":
        for key, after in sorted(new.items()):
            before = live.get(key, "")
            kind = "added" if key not in live else "unchanged" if before == after else "changed"
            change.rows.append({"key": key, "change": kind, "before": before, "after": after})
    else:
        missing = sorted(k for k in keys if k not in live)
        if missing:
            raise ValueError(f"environment-variables unset: expected keys the service has (no {', '.join(missing)})")
        change.rows = [{"key": k, "change": "removed", "before": live[k], "after": ""} for k in sorted(keys)]
    return change
