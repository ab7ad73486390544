"""Keys that users and parameters give for the stores, checked against each store's layout before any use (pure).

A key never leaves its store: no `..` or `.`, no absolute path, no backslash, no empty part, and exactly as many
`/`-separated parts as the layout has, each made of letters, digits, `.`, `_` and `-`. The same rule guards the local
directory and S3 (where `..` would not escape, but would name an object outside the layout).
"""

from __future__ import annotations

import re

from playground_ops.errors import ConfigError

PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def check_key(key: str, what: str, layout: str) -> str:
    """The key, if every part fits the layout (`a/b/c` with as many parts as `layout` names), else a ConfigError
    naming `what` and the layout."""
    expected = f"a key of the form {layout} (letters, digits, '.', '_' and '-' in each part)"
    shown = key if len(key) <= 200 else key[:200] + "..."
    if not isinstance(key, str) or not key:
        raise ConfigError(what, expected, got=repr(key))
    parts = key.split("/")
    if len(parts) != layout.count("/") + 1 or any(p in {".", ".."} or not PART.fullmatch(p) for p in parts):
        raise ConfigError(what, expected, got=shown)
    return key


def check_relative(key: str, what: str = "store key") -> str:
    """Any key a store is asked for stays inside it: relative, no `.`/`..` part, no backslash, no empty part
    (a prefix may end with `/`). The stores call this on every key, whatever layout the caller checked."""
    parts = key.removesuffix("/").split("/") if key else []
    if key.startswith("/") or "\\" in key or "\x00" in key or any(p in {"", ".", ".."} for p in parts):
        raise ConfigError(what, "a relative key inside the store, without '..', '.', '\\' or empty parts",
                          got=key[:200])
    return key
