"""Versions by each ecosystem's own rules, one module of rules per ecosystem as Renovate keeps them (pure).

- npm: the `semver` package's semantics (prerelease ordering, `^`/`~` ranges, the 0.x caret rules), through
  `node-semver`, a Python port of it; the tests check its answers against the `semver` copy npm itself ships.
- Python: PEP 440 versions (epochs, pre/post/dev releases, local versions) and PEP 508 requirement lines (extras,
  markers), through `packaging`, the reference implementation pip uses.

On top of both, the guide's policy: patch and minor updates apply, majors are planned; a 0.x minor and a 0.0.x patch
bump count as major; a prerelease is never a routine update; a post-release counts as a patch; a local version
(`+cu118`) is not an update; a lower version is not one either.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import nodesemver
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion
from packaging.version import Version as Pep440Version

ECOSYSTEMS = ("npm", "python")


@dataclass(frozen=True)
class Parsed:
    """What the policy needs of one version, read by its ecosystem's rules."""
    text: str
    epoch: int
    release: tuple[int, int, int]
    rest: tuple[int, ...]      # release parts past the third (PEP 440 allows 1.2.3.4)
    prerelease: bool
    local: bool
    order: Any                 # the ecosystem's own ordering
    public: Any                # the same, without a local part


def _npm(text: str) -> Parsed | None:
    try:
        v = nodesemver.make_semver(text, loose=False)
    except (ValueError, TypeError):
        return None
    return Parsed(text, 0, (v.major, v.minor, v.patch), (), bool(v.prerelease), False, _NpmOrder(v), _NpmOrder(v))


def _python(text: str) -> Parsed | None:
    try:
        v = Pep440Version(text)
    except InvalidVersion:
        return None
    parts = (*v.release, 0, 0)[:3]
    return Parsed(text, v.epoch, parts, v.release[3:], v.is_prerelease, v.local is not None, v,
                  Pep440Version(v.public))


class _NpmOrder:
    """npm's ordering of two versions (semver precedence: build metadata ignored, prereleases before their release)."""

    def __init__(self, v: Any):
        self.v = v

    def _cmp(self, other: _NpmOrder) -> int:
        return self.v.compare(other.v)

    def __lt__(self, other: _NpmOrder) -> bool:
        return self._cmp(other) < 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _NpmOrder) and self._cmp(other) == 0

    def __hash__(self) -> int:
        return hash((self.v.major, self.v.minor, self.v.patch))


def parse(text: str | None, ecosystem: str) -> Parsed | None:
    """A version by the ecosystem's rules, or None for what is not one there (git URLs, `linked`, ranges, missing)."""
    if ecosystem not in ECOSYSTEMS:
        raise ValueError(f"ecosystem: expected one of {', '.join(ECOSYSTEMS)}, got {ecosystem!r}")
    text = (text or "").strip()
    if not text:
        return None
    return _npm(text) if ecosystem == "npm" else _python(text)


def classify(current: str | None, target: str | None, ecosystem: str) -> str:
    """none, patch, minor or major under the guide's policy; `prerelease`, `local` or `downgrade` for a target that
    is not a routine update; `unknown` when either side is not a version of this ecosystem."""
    a, b = parse(current, ecosystem), parse(target, ecosystem)
    if a is None or b is None:
        return "unknown"
    if b.local and a.public == b.public:
        return "local"  # another local build (+cu118) of the same version, never an update
    if a.order == b.order:
        return "none"
    if b.order < a.order:
        return "downgrade"
    if b.prerelease:
        return "prerelease"  # never a routine update, whatever it would bump
    if a.epoch != b.epoch:
        return "major"  # a new epoch restarts the numbering
    if a.release == b.release:
        return "patch"  # a prerelease's release, a post-release, a fourth part: the same release line
    (ma, na, pa), (mb, nb, _) = a.release, b.release
    if ma != mb or (ma == 0 and na != nb) or (ma == 0 and na == 0):
        return "major"  # in 0.x the minor is the major; in 0.0.x every bump may break
    return "minor" if na != nb else "patch"


def routine_range(current: str, ecosystem: str) -> str | None:
    """The range a routine update may move within, written as the ecosystem writes ranges: npm's caret range (whose
    0.x rules are the policy's), or a PEP 440 specifier set up to the next major."""
    a = parse(current, ecosystem)
    if a is None:
        return None
    if ecosystem == "npm":
        return f"^{current}"
    major, minor, _ = a.release
    epoch = f"{a.epoch}!" if a.epoch else ""
    upper = f"{major + 1}" if major else (f"0.{minor + 1}" if minor else None)
    return f">={current}" + (f",<{epoch}{upper}" if upper else f",<={current}")


def newest_within(current: str | None, versions: Iterable[str], ecosystem: str) -> str | None:
    """The newest stable release a routine update may reach from current (inside routine_range), if newer."""
    if current is None or (span := routine_range(current, ecosystem)) is None:
        return None
    candidates = [v for v in versions if classify(current, v, ecosystem) in ("patch", "minor")]
    if ecosystem == "npm":
        return nodesemver.max_satisfying(candidates, span, loose=False) if candidates else None
    allowed = list(SpecifierSet(span).filter(candidates))  # stable releases only, as pip chooses
    return max(allowed, key=Pep440Version, default=None)


def satisfies(version: str, spec: str, ecosystem: str) -> bool:
    """Whether version is inside spec: an npm range (`^1.2.0`, `~1.2`, `>=1 <2`, `1.x`) or a PEP 440 specifier set
    (`~=1.4.2`, `>=2,<3`, `==1.*`), by that ecosystem's rules (prereleases only where the range names one)."""
    if ecosystem == "npm":
        return bool(nodesemver.satisfies(version, spec, loose=False))
    try:
        return SpecifierSet(spec).contains(version)
    except InvalidVersion:
        return False


# PEP 508 requirement lines


def canonical(name: str) -> str:
    """A Python distribution's normalised name (PEP 503)."""
    return canonicalize_name(name)


def requirement_name(line: str) -> str | None:
    """The normalised name of a PEP 508 requirement (`name[extras] specifiers ; markers`), None if it is not one."""
    try:
        return canonical(Requirement(line).name)
    except InvalidRequirement:
        return None


@dataclass(frozen=True)
class Pin:
    name: str          # normalised
    version: str       # as written
    start: int         # where the version text begins in its line
    line: int


def _requirement_text(line: str) -> str:
    """A requirements-file line without its comment (pip: `#` at the start or after whitespace)."""
    for i, ch in enumerate(line):
        if ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def requirement_pins(text: str) -> list[Pin]:
    """The exact pins (`name[extras]==version ; markers`) of a requirements file: a requirement with one `==`
    specifier that names no wildcard. Options (`-r`, `--hash`), URLs and ranges are not pins."""
    pins = []
    for n, raw in enumerate(text.splitlines()):
        body = _requirement_text(raw).strip()
        if not body or body.startswith("-"):
            continue
        try:
            req = Requirement(body.rstrip("\\").strip())
        except InvalidRequirement:
            continue
        specs = list(req.specifier)
        if req.url or len(specs) != 1 or specs[0].operator != "==" or specs[0].version.endswith(".*"):
            continue
        version = specs[0].version
        operator_at = raw.index("==")
        pins.append(Pin(canonical(req.name), version, raw.index(version, operator_at + 2), n))
    return pins


def read_requirement_pins(text: str) -> dict[str, str]:
    """The exact pins of a requirements file, by normalised name."""
    return {p.name: p.version for p in requirement_pins(text)}


def rewrite_requirement_pins(text: str, updates: dict[str, str]) -> str:
    """The requirements file with the given pins moved to new versions; everything else kept byte for byte."""
    lines = text.splitlines(keepends=True)
    for pin in requirement_pins(text):
        new = updates.get(pin.name)
        if new:
            line = lines[pin.line]
            lines[pin.line] = line[:pin.start] + new + line[pin.start + len(pin.version):]
    return "".join(lines)
