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

import json
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import nodesemver
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
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
    if (a.local or b.local) and (a.public == b.public or a.order.local != b.order.local):
        return "local"  # another build (+cu118 -> +cu121, a public release -> a local build or back): never routine
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
    lower = str(a.public)  # PEP 440 allows no local part (+cu118) in an ordered comparison
    return f">={lower}" + (f",<{epoch}{upper}" if upper else f",<={lower}")


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


# Ranges kept in the form the repository wrote them (Renovate's `bump` range strategy)

_NPM_ALIAS = re.compile(r"^npm:(?P<package>(?:@[a-z0-9][\w.-]*/)?[a-z0-9][\w.-]*)@(?P<range>.+)$")
_NPM_SIMPLE = re.compile(r"^(?P<op>\^|~|=|v)?(?P<version>\d+(?:\.\d+){0,2}(?:-[0-9A-Za-z.-]+)?)$")


def _truncated(version: str, parts: int) -> str:
    """The first parts of a version's release (`1.4.2`, 2 -> `1.4`), without prerelease or build tags."""
    return ".".join(re.split(r"[-+]", version, maxsplit=1)[0].split(".")[:parts])


def keep_range_form(spec: str, new: str, ecosystem: str) -> str | None:
    """The written range moved to admit new, in the form the repository wrote it; the range itself where it already
    admits new and is not a caret, tilde or exact pin (only the lock file moves); None when no rewrite keeps its form
    (a compound range that excludes new: a person widens it).

    npm: `~2.3.0` -> `~2.4.2`, `^1.2.0` -> `^1.3.0`, `^1.2` -> `^1.3` (the precision kept), `2.6.8` -> `2.6.9`,
    `=1.0.0` -> `=1.0.1`; `>=1.1.0 <3`, `1.x`, `*` kept when they admit new.
    Python: `==1.15.0` -> `==1.17.0`, `~=3.1.0` -> `~=3.5.3` (as many parts as written), `== 3.6` keeps its spaces;
    `>=3.0`, `~=1.4` (admitting 1.9), `>=2,<3` kept when they admit new."""
    written = spec.strip()
    if ecosystem == "npm":
        alias = _NPM_ALIAS.match(written)
        if alias:  # `npm:debug@~2.6.0`: the aliased package's range, moved in its own form
            moved = keep_range_form(alias["range"], new, "npm")
            return f"npm:{alias['package']}@{moved}" if moved is not None else None
        simple = _NPM_SIMPLE.match(written)
        op = (simple["op"] or "") if simple else ""
        parts = len(_truncated(simple["version"], 3).split(".")) if simple else 0
        if simple and (op in ("^", "~") or parts == 3):
            return op + (_truncated(new, parts) if parts < 3 else new.split("+")[0])
        if simple and not op and not satisfies(new, written, "npm"):  # `1.2` is npm's x-range 1.2.x: `1.3`
            return _truncated(new, parts)
        return written if satisfies(new, written, "npm") else None
    try:
        specs = list(SpecifierSet(written))
    except InvalidSpecifier:
        return None
    if len(specs) == 1 and specs[0].operator in ("==", "~=") and not specs[0].version.endswith(".*"):
        old = specs[0].version
        if specs[0].operator == "~=" and satisfies(new, written, "python"):
            return written
        moved = new if specs[0].operator == "==" else _truncated(new, max(2, len(_truncated(old, 9).split("."))))
        return written[:written.rindex(old)] + moved + written[written.rindex(old) + len(old):]
    return written if satisfies(new, written, "python") else None


def widen_peer_range(spec: str, new: str) -> str:
    """A peerDependencies range that also admits new, never narrower than written: `^4.17.0` stays when it admits
    new; otherwise the written range `||` the same form at new (`~4.17.0 || ~4.18.2`)."""
    if satisfies(new, spec.strip(), "npm"):
        return spec
    return f"{spec.strip()} || {keep_range_form(spec, new, 'npm') or '^' + new}"


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
class WrittenRequirement:
    name: str          # normalised
    spec: str          # the specifier set as written (`== 3.6`, `>=2,<3`)
    start: int         # where it begins in its line
    line: int

    @property
    def pin(self) -> str | None:
        """The version of an exact pin (one `==` specifier naming no wildcard), else None."""
        specs = list(SpecifierSet(self.spec))
        exact = len(specs) == 1 and specs[0].operator == "==" and not specs[0].version.endswith(".*")
        return specs[0].version if exact else None


def _requirement_text(line: str) -> str:
    """A requirements-file line without its comment (pip: `#` at the start or after whitespace)."""
    for i, ch in enumerate(line):
        if ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def requirement_specs(text: str) -> list[WrittenRequirement]:
    """The requirements of a requirements file that carry a version specifier (`name[extras] spec ; markers`), as
    written. Options (`-r`, `--hash`), URLs and bare names are not among them."""
    found = []
    for n, raw in enumerate(text.splitlines()):
        body = _requirement_text(raw)
        if not body.strip() or body.strip().startswith("-"):
            continue
        try:
            req = Requirement(body.strip().rstrip("\\").strip())
        except InvalidRequirement:
            continue
        if req.url or not req.specifier:
            continue
        head = body.split(";", 1)[0]
        begin = min(i for i in (head.find(c) for c in "<>=!~") if i >= 0)
        found.append(WrittenRequirement(canonical(req.name), head[begin:].rstrip(" \\\t"), begin, n))
    return found


def read_requirements(text: str) -> dict[str, str]:
    """What each requirement of a requirements file asks for, as written, by normalised name."""
    return {r.name: r.spec for r in requirement_specs(text)}


def read_requirement_pins(text: str) -> dict[str, str]:
    """The exact pins of a requirements file, by normalised name."""
    return {r.name: r.pin for r in requirement_specs(text) if r.pin}


def rewrite_requirements(text: str, specs: dict[str, str]) -> str:
    """The requirements file with the named requirements' specifiers replaced; everything else kept byte for byte."""
    lines = text.splitlines(keepends=True)
    for req in requirement_specs(text):
        new = specs.get(req.name)
        if new is not None:
            line = lines[req.line]
            lines[req.line] = line[:req.start] + new + line[req.start + len(req.spec):]
    return "".join(lines)


def rewrite_pyproject_dependencies(text: str, specs: dict[str, str]) -> str:
    """pyproject.toml with the named `[project] dependencies` given new specifiers, edited in place as text."""
    for dependency in tomllib.loads(text).get("project", {}).get("dependencies", []):
        written = requirement_specs(dependency)
        if not written or written[0].name not in specs:
            continue
        new = rewrite_requirements(dependency, {written[0].name: specs[written[0].name]})
        quoted = [q for q in (json.dumps(dependency), f"'{dependency}'") if text.count(q) == 1]
        if not quoted:
            raise ValueError(f"pyproject.toml: expected the dependency {dependency!r} written once")
        text = text.replace(quoted[0], json.dumps(new) if quoted[0].startswith('"') else f"'{new}'")
    return text


# package.json, edited as text so its formatting survives

NPM_SECTIONS = ("dependencies", "devDependencies", "optionalDependencies", "peerDependencies")


def _string_end(text: str, start: int) -> int:
    """The index just past the JSON string that opens at start."""
    i = start + 1
    while text[i] != '"':
        i += 2 if text[i] == "\\" else 1
    return i + 1


def _sections(text: str) -> dict[str, dict[str, tuple[int, int]]]:
    """Each top-level dependency section of package.json: package -> the span of its range's string (quotes
    included)."""
    found: dict[str, dict[str, tuple[int, int]]] = {}
    depth, i, key, section = 0, 0, None, None
    while i < len(text):
        ch = text[i]
        if ch == '"':
            end = _string_end(text, i)
            value = json.loads(text[i:end])
            after = text[end:].lstrip()
            if after.startswith(":"):
                key = value
            elif depth == 2 and section is not None and key is not None:
                found[section][key] = (i, end)
            i = end
            continue
        if ch == "{":
            depth += 1
            if depth == 2 and key in NPM_SECTIONS:
                section = key
                found[section] = {}
        elif ch == "}":
            depth -= 1
            if depth < 2:
                section = None
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        i += 1
    return found


def rewrite_package_json(text: str, changes: dict[str, dict[str, str]]) -> str:
    """package.json with the given ranges replaced (section -> package -> new range); every other byte kept. A
    package missing from its section is an error naming both."""
    spans = _sections(text)
    edits = []
    for section, packages in changes.items():
        for package, new in packages.items():
            if package not in spans.get(section, {}):
                raise ValueError(f"package.json: expected {package} in {section}")
            edits.append((*spans[section][package], json.dumps(new)))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def written_ranges(text: str) -> dict[str, tuple[str, str]]:
    """package -> (section, range as written) for the sections npm installs from (peerDependencies aside)."""
    data = json.loads(text)
    return {name: (section, spec) for section in reversed(NPM_SECTIONS[:3])
            for name, spec in (data.get(section) or {}).items() if isinstance(spec, str)}
