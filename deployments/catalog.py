"""The deployments declared in prefect.yaml, read once for `serve`, `run` and `demo`."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from playground_ops.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
PREFECT_YAML = ROOT / "prefect.yaml"


@dataclass
class DeploymentSpec:
    name: str
    entrypoint: str
    description: str = ""
    tags: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    schedules: list[dict[str, Any]] = field(default_factory=list)
    concurrency_limit: dict[str, Any] | int | None = None

    @property
    def flow_name(self) -> str:
        return self.name  # every runbook's flow and deployment share the guide's name

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"

    def load_flow(self) -> Any:
        from prefect.flows import load_flow_from_entrypoint

        path, func = self.entrypoint.split(":")
        return load_flow_from_entrypoint(f"{ROOT / path}:{func}")

    def parameter_names(self) -> list[str]:
        return list(inspect.signature(self.load_flow().fn).parameters)

    def check_parameters(self, parameters: dict[str, Any], target: Any = None) -> dict[str, Any]:
        """Each parameter checked against the runbook's own signature (type, range, allowed values, and the runbook's
        own checks that need no I/O: `Checked` in its annotation), then the whole request against the target's
        declarations when the runbook has a request_check, before any run is created: a ConfigError naming the
        parameter, the expected form and the value."""
        from pydantic import TypeAdapter, ValidationError

        from playground_ops.errors import Checked

        declared = self.load_flow()
        signature = inspect.signature(declared.fn)
        checked: dict[str, Any] = {}
        for name, value in parameters.items():
            annotation = signature.parameters[name].annotation
            adapter = TypeAdapter(Any if annotation is inspect.Parameter.empty else annotation)
            try:
                value = adapter.validate_python(value)
            except ValidationError:
                raise ConfigError(f"parameter {name} of {self.name}", describe(adapter.json_schema()),
                                  got=str(value)[:80]) from None
            Checked.run_all(annotation, value)
            checked[name] = value
        request_check = getattr(declared, "request_check", None)
        if request_check is not None and target is not None:
            request = {name: p.default for name, p in signature.parameters.items()
                       if p.default is not inspect.Parameter.empty}
            request_check({**request, **checked}, target)
        return parameters


def describe(schema: dict[str, Any]) -> str:
    """A JSON schema said as the form an operator types: 'a whole number from 1 to 19', 'true or false', ..."""
    if "anyOf" in schema:
        forms = [describe(s) for s in schema["anyOf"] if s.get("type") != "null"]
        nullable = any(s.get("type") == "null" for s in schema["anyOf"])
        return " or ".join(forms) + (" (or null for the default)" if nullable else "")
    if "enum" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"])
    if schema.get("format") == "uuid":
        return "an id (a UUID such as 0b5e4c1e-4f7a-4a51-9d0e-2f1f3c4d5e6f)"
    kind = schema.get("type")
    low, high = schema.get("minimum", schema.get("exclusiveMinimum")), schema.get("maximum", schema.get("exclusiveMaximum"))
    noun = {"integer": "a whole number", "number": "a number", "boolean": "true or false", "string": "text",
            "array": "a list, e.g. [a, b]", "object": "a mapping, e.g. {a: 1}"}.get(kind, "a value")
    if low is not None and high is not None:
        return f"{noun} from {low} to {high}"
    if low is not None:
        return f"{noun} of at least {low}"
    if high is not None:
        return f"{noun} of at most {high}"
    return noun


def load_catalog(path: Path = PREFECT_YAML) -> dict[str, DeploymentSpec]:
    data = yaml.safe_load(path.read_text())
    specs = {}
    for raw in data.get("deployments", []):
        spec = DeploymentSpec(name=raw["name"], entrypoint=raw["entrypoint"], description=raw.get("description", ""),
                              tags=raw.get("tags", []), parameters=raw.get("parameters") or {},
                              schedules=raw.get("schedules") or [], concurrency_limit=raw.get("concurrency_limit"))
        specs[spec.name] = spec
    return specs


def runbook_names() -> list[str]:
    """The flow names of every runbook in prefect.yaml (each deployment is named after its runbook's flow)."""
    return sorted(spec.flow_name for spec in load_catalog().values())


def get_spec(runbook: str) -> DeploymentSpec:
    catalog = load_catalog()
    if runbook not in catalog:
        raise ConfigError("runbook", f"one of {', '.join(sorted(catalog))}", got=runbook)
    return catalog[runbook]
