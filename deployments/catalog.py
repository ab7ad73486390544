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


def load_catalog(path: Path = PREFECT_YAML) -> dict[str, DeploymentSpec]:
    data = yaml.safe_load(path.read_text())
    specs = {}
    for raw in data.get("deployments", []):
        spec = DeploymentSpec(name=raw["name"], entrypoint=raw["entrypoint"], description=raw.get("description", ""),
                              tags=raw.get("tags", []), parameters=raw.get("parameters") or {},
                              schedules=raw.get("schedules") or [], concurrency_limit=raw.get("concurrency_limit"))
        specs[spec.name] = spec
    return specs


def get_spec(runbook: str) -> DeploymentSpec:
    catalog = load_catalog()
    if runbook not in catalog:
        raise ConfigError("runbook", f"one of {', '.join(sorted(catalog))}", got=runbook)
    return catalog[runbook]
