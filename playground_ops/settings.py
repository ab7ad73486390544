"""One typed settings object, read from the environment and an optional `.env`, and the targets it defines.

The guide's variable names are kept where it has them (DATABASE_URL, REDIS_URL, JWT_SECRET, RENDER_API_KEY);
playground-ops' own settings start with OPS_. Every secret is a SecretStr: it prints as '**********'.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (AliasChoices, BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator,
                      model_validator)
from pydantic_settings import BaseSettings, SettingsConfigDict

from playground_ops.errors import ConfigError, expected_form, shown_value, yaml_problem
from playground_ops.redact import mask_url, register_secret

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")

# What each setting must look like, for the one-line error an operator gets when it does not.
EXPECTED = {
    "DATABASE_URL": "postgresql://user:password@host:port/dbname",
    "REDIS_URL": "redis://[:password@]host:port/db",
    "HEALTH_URL": "http(s)://host[:port]/health",
    "OPS_AUDIT_URL": "a directory path or s3://bucket/prefix",
    "OPS_TARGETS_FILE": "the path of a readable YAML file with a 'targets:' list",
    "OPS_WEBHOOK_URL": "http(s)://host/path",
    "OPS_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/...",
    "RENDER_API_URL": "http(s)://host/v1",
    "TARGET_NAME": "lowercase letters, digits and dashes, e.g. production",
    "OPS_REPO_URL": "a git URL or the path of a git repository",
    "OPS_REPO_PROJECTS": "comma-separated path=ecosystem pairs, e.g. backend=npm,frontend=npm,api=python",
    "GITHUB_REPOSITORY": "owner/name",
    "GITHUB_API_URL": "http(s)://host[/prefix], e.g. https://api.github.com",
    "RENDER_SERVICES": "comma-separated name=service-id pairs, e.g. backend=srv-abc123,frontend=srv-def456",
}
SERVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def require_match(pattern: str | re.Pattern, value: str, expected: str, shown: str | None = None) -> str:
    """The value, or a ValueError saying what was expected and what came instead."""
    if not re.match(pattern, value):
        raise ValueError(f"expected {expected} (got {shown if shown is not None else repr(value)})")
    return value


class AppSchema(BaseModel):
    """Where the playground keeps its users and requests: the one place app-facing SQL takes names from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    users: str = "users"
    requests: str = "requests"
    # column names, by role
    user_id: str = "id"
    email: str = "email"
    role: str = "role"
    daily_quota: str = "daily_quota"
    request_user_id: str = "user_id"
    endpoint: str = "endpoint"
    model: str = "model"
    status_code: str = "status_code"
    latency_ms: str = "latency_ms"
    tokens: str = "tokens"
    client_ip: str = "client_ip"
    error_type: str = "error_type"
    created_at: str = "created_at"

    @field_validator("*")
    @classmethod
    def _identifier(cls, value: str, info: Any) -> str:
        if not IDENTIFIER.match(value):
            raise ValueError(f"app_schema.{info.field_name}: expected a SQL identifier such as 'requests' (got {value!r})")
        return value

    def smoke_queries(self) -> dict[str, str]:
        """The guide's backup verification queries: the counts of users and requests."""
        return {f"{self.users}_count": f"SELECT count(*) FROM {self.users}",
                f"{self.requests}_count": f"SELECT count(*) FROM {self.requests}"}


class PlatformService(BaseModel):
    """One of the target's services on the platform (the playground has a backend and a static frontend)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    id: str

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        return require_match(SLUG, value, "a service name of lowercase letters, digits and dashes, e.g. frontend")

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return require_match(SERVICE_ID, value, "a platform service id such as srv-abc123")


class Platform(BaseModel):
    """The hosting platform's API for this target (Render, or the sandbox's stand-in of it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["render", "none"] = "none"
    api_url: str = "https://api.render.com/v1"
    api_key: SecretStr | None = None
    service_id: str | None = None  # the backend: the service the platform runbooks restart, scale and watch
    owner_id: str | None = None  # the workspace, which Render's logs API asks for
    services: list[PlatformService] = Field(default_factory=list)  # every service (default: the backend alone)

    @field_validator("services")
    @classmethod
    def _distinct(cls, value: list[PlatformService]) -> list[PlatformService]:
        for attr in ("name", "id"):
            seen = [getattr(s, attr) for s in value]
            if len(seen) != len(set(seen)):
                raise ValueError(f"expected services with distinct {attr}s (got {', '.join(seen)})")
        return value

    def all_services(self) -> list[PlatformService]:
        """The declared services, or the backend alone (named backend) when none are declared."""
        if self.services:
            return list(self.services)
        return [PlatformService(name="backend", id=self.service_id)] if self.service_id else []

    def service(self, name: str) -> PlatformService:
        """The service by its declared name; a ConfigError (a ValueError) naming the choices otherwise."""
        found = next((s for s in self.all_services() if s.name == name), None)
        if found is None:
            raise ConfigError("service", f"one of {', '.join(s.name for s in self.all_services()) or '(none)'}",
                              got=repr(name))
        return found

    def for_service(self, service: PlatformService) -> "Platform":
        """This platform, aimed at another of the target's services (the platform tasks act on service_id)."""
        return self.model_copy(update={"service_id": service.id})


class Project(BaseModel):
    """One project in the application's repository: its folder, its package manager, and its test command."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    ecosystem: Literal["npm", "python"]
    test: str | None = None  # default: `npm test`, or pytest for Python projects

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        value = value.strip().strip("/") or "."
        if value.startswith("..") or "/../" in f"/{value}/" or value.startswith("~"):
            raise ValueError(f"expected a folder inside the repository, such as 'backend' (got {value!r})")
        return value


class CodeHost(BaseModel):
    """Where pull requests are opened: GitHub's REST API (or a compatible one) for one repository."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["github"] = "github"
    api_url: str = "https://api.github.com"
    repository: str
    token: SecretStr

    @field_validator("repository")
    @classmethod
    def _owner_name(cls, value: str) -> str:
        return require_match(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", value, EXPECTED["GITHUB_REPOSITORY"])

    @field_validator("api_url")
    @classmethod
    def _http(cls, value: str) -> str:
        return require_match(r"^https?://[^/\s]+", value, EXPECTED["GITHUB_API_URL"]).rstrip("/")


class Repository(BaseModel):
    """The application's git repository: where it is, its base branch, its projects and where its PRs go."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    base: str = "main"
    projects: list[Project]
    integration_test: str = "test:integration"  # an npm script at the repository's root, run where it exists
    code_host: CodeHost | None = None
    infrastructure_file: str = "render.yaml"  # the platform's blueprint, backed up by backup-configuration
    # vulnerability services: npm's registry (bulk advisories) and OSV; None means the public ones
    npm_audit_registry: str | None = None
    osv_url: str | None = None

    @property
    def url_password(self) -> str | None:
        """A password or token written into an https URL (https://x-access-token:TOKEN@host/...), kept out of logs."""
        return urlsplit(self.url).password if "://" in self.url else None

    @field_validator("infrastructure_file")
    @classmethod
    def _inside(cls, value: str) -> str:
        parts = value.split("/")
        if value.startswith(("/", "~")) or any(p in {"", ".", ".."} for p in parts) or "\\" in value:
            raise ValueError(f"expected a file path inside the repository, such as render.yaml (got {value!r})")
        return value

    @field_validator("projects")
    @classmethod
    def _some(cls, value: list[Project]) -> list[Project]:
        if not value:
            raise ValueError(f"expected {EXPECTED['OPS_REPO_PROJECTS']}")
        return value


class Scaling(BaseModel):
    """The scaling the target should have (the guide's current settings) and the most instances an operator may
    ask for without an approval."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_instances: int = Field(1, ge=1, le=100)
    max_instances: int = Field(3, ge=1, le=100)
    cpu_percent: int = Field(70, ge=1, le=100)
    memory_percent: int = Field(80, ge=1, le=100)
    instance_bound: int = Field(5, ge=1, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> "Scaling":
        if not self.min_instances <= self.max_instances <= self.instance_bound:
            raise ValueError(f"expected min_instances <= max_instances <= instance_bound (got {self.min_instances}, "
                             f"{self.max_instances}, {self.instance_bound})")
        return self


ENV_KEY = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")


class EnvPolicy(BaseModel):
    """Which of the service's environment variables may be given as plain values (the rest are secrets, given
    through Prefect Secret blocks), and which the application cannot run without."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    non_secret: list[str] = ["NODE_ENV", "APP_VERSION", "LOG_LEVEL", "CORS_ORIGIN", "RATE_LIMIT_PER_MINUTE"]
    required: list[str] = ["DATABASE_URL", "REDIS_URL", "JWT_SECRET"]

    @field_validator("non_secret", "required")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        for key in value:
            require_match(ENV_KEY, key, "environment variable names such as NODE_ENV")
        return value


class RotatedSecret(BaseModel):
    """One secret secret-rotation renews: how a new value is made, and how the test step proves the service takes it
    (a token signed with it: an access token sent as Bearer to rotation.check_path, a refresh token posted to
    rotation.refresh_path; none: the health endpoint only)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    generator: Literal["base64-32", "hex-32", "urlsafe-32"] = "base64-32"  # base64-32: openssl rand -base64 32
    token: Literal["access", "refresh", "none"] = "none"
    token_lifetime_seconds: int = Field(3600, ge=0, le=90 * 86400)

    @field_validator("name")
    @classmethod
    def _key(cls, value: str) -> str:
        require_match(ENV_KEY, value, "environment variable names such as JWT_SECRET")
        if value.endswith("_PREVIOUS"):
            raise ValueError(f"expected a secret's own name, not its grace-period copy (got {value!r})")
        return value


class Rotation(BaseModel):
    """The secrets secret-rotation renews on this target, and for how long the previous values stay accepted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    secrets: list[RotatedSecret] = [
        RotatedSecret(name="JWT_SECRET", token="access", token_lifetime_seconds=3600),
        RotatedSecret(name="JWT_REFRESH_SECRET", token="refresh", token_lifetime_seconds=7 * 86400)]
    grace_period_seconds: int | None = Field(None, ge=0, le=90 * 86400)  # none: the longest token lifetime
    check_path: str = Field("/api/me", pattern=r"^/[A-Za-z0-9/_.-]*$")
    refresh_path: str = Field("/api/refresh", pattern=r"^/[A-Za-z0-9/_.-]*$")

    @property
    def grace_seconds(self) -> int:
        if self.grace_period_seconds is not None:
            return self.grace_period_seconds
        return max((s.token_lifetime_seconds for s in self.secrets), default=0)

    def declared(self, name: str) -> RotatedSecret:
        found = next((s for s in self.secrets if s.name == name), None)
        if found is None:
            raise ValueError(f"secrets: expected secrets the target declares for rotation "
                             f"({', '.join(s.name for s in self.secrets)}) (got {name!r})")
        return found


class Target(BaseModel):
    """A system being maintained: its name, environment, and how to reach its service, database and cache."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    environment: Literal["production", "staging", "development", "sandbox"] = "production"
    health_url: str
    database_url: SecretStr
    redis_url: SecretStr
    jwt_secret: SecretStr | None = None
    platform: Platform = Field(default_factory=Platform)
    scaling: Scaling = Field(default_factory=Scaling)
    env: EnvPolicy = Field(default_factory=EnvPolicy)
    rotation: Rotation = Field(default_factory=Rotation)
    app_schema: AppSchema = Field(default_factory=AppSchema)
    # pin the database's identity (SELECT system_identifier FROM pg_control_system()): maintenance refuses any other
    system_identifier: str | None = None
    repository: Repository | None = None

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        return require_match(SLUG, value, EXPECTED["TARGET_NAME"])

    @field_validator("health_url")
    @classmethod
    def _http(cls, value: str) -> str:
        return require_match(r"^https?://[^/\s]+", value, EXPECTED["HEALTH_URL"], repr(mask_url(value)))

    @field_validator("database_url")
    @classmethod
    def _postgres(cls, value: SecretStr) -> SecretStr:
        if not re.match(r"^postgres(ql)?://[^/\s]*/[^/\s?]+", value.get_secret_value()):
            raise ValueError(f"expected {EXPECTED['DATABASE_URL']}")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: SecretStr) -> SecretStr:
        if not re.match(r"^rediss?://[^/\s]+(/\d+)?$", value.get_secret_value()):
            raise ValueError(f"expected {EXPECTED['REDIS_URL']}")
        return value

    @property
    def database_name(self) -> str:
        return self.database_url.get_secret_value().rsplit("/", 1)[1].split("?")[0]

    def describe(self) -> dict[str, str]:
        """What an operator may see of this target: no secret, URL passwords masked."""
        return {
            "name": self.name,
            "environment": self.environment,
            "health_url": self.health_url,
            "database": mask_url(self.database_url.get_secret_value()) or "",
            "redis": mask_url(self.redis_url.get_secret_value()) or "",
            "platform": self.platform.kind,
        }


class Settings(BaseSettings):
    """playground-ops' settings. Environment variables win over `.env`."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True,
                                      env_ignore_empty=True)

    # The single default target, when no targets file is given (the guide's names).
    target_name: str = Field("production", validation_alias="TARGET_NAME")
    target_environment: str = Field("production", validation_alias="TARGET_ENVIRONMENT")
    health_url: str | None = Field(None, validation_alias="HEALTH_URL")
    database_url: SecretStr | None = Field(None, validation_alias="DATABASE_URL")
    redis_url: SecretStr | None = Field(None, validation_alias="REDIS_URL")
    jwt_secret: SecretStr | None = Field(None, validation_alias="JWT_SECRET")
    render_api_key: SecretStr | None = Field(None, validation_alias="RENDER_API_KEY")
    render_service_id: str | None = Field(None, validation_alias="RENDER_SERVICE_ID")
    render_api_url: str = Field("https://api.render.com/v1", validation_alias="RENDER_API_URL")
    render_owner_id: str | None = Field(None, validation_alias="RENDER_OWNER_ID")
    render_services: str | None = Field(None, validation_alias="RENDER_SERVICES")  # every service: name=id,...

    # playground-ops itself
    targets_file: Path | None = Field(None, validation_alias="OPS_TARGETS_FILE")
    # never named `home`: with populate_by_name a field called home would read $HOME
    ops_home_path: Path = Field(Path("~/.playground-ops"), validation_alias="OPS_HOME")
    audit_url: str | None = Field(None, validation_alias="OPS_AUDIT_URL")
    s3_endpoint_url: str | None = Field(None, validation_alias=AliasChoices("OPS_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"))
    webhook_url: SecretStr | None = Field(None, validation_alias="OPS_WEBHOOK_URL")
    slack_webhook_url: SecretStr | None = Field(None, validation_alias="OPS_SLACK_WEBHOOK_URL")
    notification_block: str = Field("playground-ops-notifications", validation_alias="OPS_NOTIFICATION_BLOCK")
    work_pool: str = Field("playground-ops", validation_alias="OPS_WORK_POOL")
    # how many workers share the work pool (`setup --workers N` puts it in the pool's job template): more than one
    # needs stores they all reach
    workers: int = Field(1, ge=1, le=1000, validation_alias="OPS_WORKERS")
    backup_url: str | None = Field(None, validation_alias="OPS_BACKUP_URL")
    backup_encryption_secret: str | None = Field(None, validation_alias="OPS_BACKUP_ENCRYPTION_SECRET")
    # configuration backups hold every secret of every service: their own key (default: the database backups' key)
    config_backup_encryption_secret: str | None = Field(None, validation_alias="OPS_CONFIG_BACKUP_ENCRYPTION_SECRET")
    verify_database_url: SecretStr | None = Field(None, validation_alias="OPS_VERIFY_DATABASE_URL")
    backup_part_size_mib: int | None = Field(None, ge=5, le=5120, validation_alias="OPS_BACKUP_PART_SIZE_MIB")
    alert_rules_file: Path | None = Field(None, validation_alias="OPS_ALERT_RULES_FILE")
    # a critical alert firing this long opens an incident through the automation setup makes (unset: never)
    incident_after: str | None = Field(None, validation_alias="OPS_INCIDENT_AFTER")
    metrics_url: str | None = Field(None, validation_alias="OPS_METRICS_URL")
    # the shortest waits a run may be asked for: an operator's approval, and an incident's recovery (production keeps
    # the defaults; tests and drills may shorten them)
    approval_min_seconds: int = Field(30, ge=1, le=3600, validation_alias="OPS_APPROVAL_MIN_SECONDS")
    recovery_min_seconds: int = Field(60, ge=1, le=3600, validation_alias="OPS_RECOVERY_MIN_SECONDS")
    # how often a runbook's run tells the server it lives (Prefect refuses less than 30 s), and how long without one
    # before the lost-run automation declares it Crashed: never before its concurrency slots' lease (60 s, Prefect's
    # least) has run out and the server's lease sweep (every 15 s) has freed them, whenever the last heartbeat came
    # the hosting platform's API: how long a call may take to answer, and how long the platform is read after a call
    # that is not idempotent lost its answer, before it is judged not taken and sent once more
    platform_timeout_seconds: float = Field(30, ge=1, le=600, validation_alias="OPS_PLATFORM_TIMEOUT_SECONDS")
    platform_confirm_seconds: float = Field(60, ge=1, le=3600, validation_alias="OPS_PLATFORM_CONFIRM_SECONDS")
    heartbeat_seconds: int = Field(30, ge=30, le=600, validation_alias="OPS_HEARTBEAT_SECONDS")
    lost_run_seconds: int = Field(105, ge=1, le=3600, validation_alias="OPS_LOST_RUN_SECONDS")

    @field_validator("lost_run_seconds")
    @classmethod
    def _lost_run_after_slots_are_free(cls, value: int, info) -> int:
        from tasks.slots import LEASE_SECONDS, LEASE_SWEEP_SECONDS

        heartbeat = info.data.get("heartbeat_seconds", 30)
        floor = heartbeat + LEASE_SECONDS + LEASE_SWEEP_SECONDS
        if value < floor:
            raise ValueError(f"expected at least {floor} s: the heartbeat ({heartbeat} s), then the slots' lease "
                             f"({LEASE_SECONDS} s) and the server's sweep of expired leases ({LEASE_SWEEP_SECONDS} s) "
                             f"(got {value})")
        return value

    # the application's repository, for the dependency runbooks (the single default target's)
    repo_url: str | None = Field(None, validation_alias="OPS_REPO_URL")
    repo_base: str = Field("main", validation_alias="OPS_REPO_BASE")
    repo_projects: str | None = Field(None, validation_alias="OPS_REPO_PROJECTS")
    github_api_url: str = Field("https://api.github.com", validation_alias="GITHUB_API_URL")
    github_repository: str | None = Field(None, validation_alias="GITHUB_REPOSITORY")
    github_token: SecretStr | None = Field(None, validation_alias="GITHUB_TOKEN")
    npm_audit_registry: str | None = Field(None, validation_alias="OPS_NPM_AUDIT_REGISTRY")
    osv_url: str | None = Field(None, validation_alias="OPS_OSV_URL")

    # the sandbox
    sandbox_admin_url_setting: str | None = Field(None, validation_alias="OPS_SANDBOX_ADMIN_URL")
    sandbox_pg_port: int = Field(54329, ge=1024, le=65535, validation_alias="OPS_SANDBOX_PG_PORT")
    drill_pg_port: int = Field(54339, ge=1024, le=65535, validation_alias="OPS_DRILL_PG_PORT")
    sandbox_database: str = Field("playground_sandbox", validation_alias="OPS_SANDBOX_DATABASE")
    sandbox_redis_url: str = Field("redis://127.0.0.1:6379", validation_alias="OPS_SANDBOX_REDIS_URL")
    sandbox_redis_db: int = Field(15, ge=0, le=15, validation_alias="OPS_SANDBOX_REDIS_DB")
    sandbox_port: int = Field(8787, ge=1024, le=65535, validation_alias="OPS_SANDBOX_PORT")
    sandbox_standins_port: int = Field(8788, ge=1024, le=65535, validation_alias="OPS_SANDBOX_STANDINS_PORT")

    @field_validator("incident_after")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^\d+(s|m|h)$", value.strip()):
            raise ValueError(f"expected a duration such as 0s, 15m or 1h (got {value!r})")
        return value.strip() if value else None

    @property
    def incident_after_seconds(self) -> float | None:
        """OPS_INCIDENT_AFTER in seconds, or None when incidents are never opened by an alert."""
        if not self.incident_after:
            return None
        return int(self.incident_after[:-1]) * {"s": 1, "m": 60, "h": 3600}[self.incident_after[-1]]

    @field_validator("audit_url", "backup_url", "metrics_url")
    @classmethod
    def _store_url(cls, value: str | None) -> str | None:
        if value and value.startswith("s3://") and not re.match(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$", value):
            raise ValueError("expected a directory path or s3://bucket/prefix")
        if value and "://" not in value and Path(value).exists() and not Path(value).is_dir():
            raise ValueError("expected a directory path or s3://bucket/prefix, not a file")
        return value

    @field_validator("verify_database_url")
    @classmethod
    def _verify_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.match(r"^postgres(ql)?://[^/\s]*/[^/\s?]+", value.get_secret_value()):
            raise ValueError(f"expected {EXPECTED['DATABASE_URL']}")
        return value

    @field_validator("webhook_url", "slack_webhook_url")
    @classmethod
    def _webhook(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value.get_secret_value()):
            raise ValueError("expected http(s)://host/path")
        return value

    @property
    def ops_home(self) -> Path:
        return self.ops_home_path.expanduser()

    @property
    def sandbox_admin_url(self) -> str:
        """The PostgreSQL the sandbox lives on: OPS_SANDBOX_ADMIN_URL, else the sandbox's own private cluster."""
        return self.sandbox_admin_url_setting or f"postgresql://postgres@127.0.0.1:{self.sandbox_pg_port}/postgres"

    def sandbox_cluster(self):
        """The sandbox's private cluster (None when OPS_SANDBOX_ADMIN_URL names another server)."""
        from tasks.backup.private_cluster import Cluster

        return None if self.sandbox_admin_url_setting else Cluster(self.ops_home / "sandbox" / "postgres",
                                                                   self.sandbox_pg_port)

    def drill_cluster(self, major: int | None = None, bindir: Path | None = None):
        """The private cluster restore drills run on when OPS_VERIFY_DATABASE_URL is not set: one data directory per
        major version (the default server programs' under `postgres`), all on OPS_DRILL_PG_PORT, one running at a time."""
        from tasks.backup.private_cluster import Cluster

        root = self.ops_home / "drill" / ("postgres" if major is None else f"postgres-{major}")
        return Cluster(root, self.drill_pg_port, bindir=bindir, port_setting="OPS_DRILL_PG_PORT")

    def drill_clusters(self) -> list:
        """Every private drill cluster initialised under OPS_HOME, each with the server programs of its own major."""
        from tasks.backup.private_cluster import Cluster, server_bindirs

        programs = server_bindirs(every=True)
        found = []
        for root in sorted((self.ops_home / "drill").glob("postgres*")):
            version = root / "pgdata" / "PG_VERSION"
            major = int(version.read_text().strip()) if version.exists() else None
            found.append(Cluster(root, self.drill_pg_port, bindir=programs.get(major), port_setting="OPS_DRILL_PG_PORT"))
        return found

    @property
    def audit_location(self) -> str:
        return self.audit_url or str(self.ops_home / "audit")

    @property
    def backup_location(self) -> str:
        return self.backup_url or str(self.ops_home / "backups")

    @property
    def metrics_location(self) -> str:
        return self.metrics_url or str(self.ops_home / "metrics")

    def check_shared_stores(self) -> None:
        """Several workers (OPS_WORKERS > 1) need the backup, metrics and audit stores on S3: a directory on one
        host is invisible to the others (a verify would miss another host's backups, alert rules its samples)."""
        if self.workers <= 1:
            return
        local = {name: where for name, where in (("OPS_BACKUP_URL", self.backup_location),
                                                  ("OPS_METRICS_URL", self.metrics_location),
                                                  ("OPS_AUDIT_URL", self.audit_location))
                 if not where.startswith("s3://")}
        if local:
            raise ConfigError(f"{', '.join(local)} ({self.workers} workers share the work pool: OPS_WORKERS)",
                              "a store every worker reaches, s3://bucket/prefix",
                              got=", ".join(dict.fromkeys(local.values())))


def load_settings(**overrides: Any) -> Settings:
    """Read the settings; a malformed one is a ConfigError naming it and the expected form."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise _config_error(exc, source="environment") from None
    for secret in (settings.database_url, settings.redis_url, settings.jwt_secret, settings.render_api_key,
                   settings.webhook_url, settings.slack_webhook_url, settings.verify_database_url, settings.github_token):
        if secret is not None:
            register_secret(secret.get_secret_value())
    return settings


def _config_error(exc: ValidationError, source: str) -> ConfigError:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or source
    name = loc.upper() if source == "environment" else loc
    own = "expected " in str(err.get("msg", ""))
    expected = expected_form(err) if own or name not in EXPECTED else EXPECTED[name]
    if err.get("type") == "extra_forbidden" and source != "environment":
        return ConfigError(name, "only the fields this place takes (see the README)", got=f"unknown field {loc.split('.')[-1]!r}")
    return ConfigError(name, expected, got=shown_value(name, err))


def _resolve(value: Any, where: str) -> Any:
    """Resolve {env: NAME} and {secret: block-name} references in a targets file."""
    if isinstance(value, dict) and set(value) == {"env"}:
        resolved = os.environ.get(value["env"])
        if resolved is None:
            raise ConfigError(where, f"environment variable {value['env']} to be set")
        return resolved
    if isinstance(value, dict) and set(value) == {"secret"}:
        from prefect.blocks.system import Secret

        try:
            return Secret.load(value["secret"]).get()
        except (ValueError, RuntimeError):
            raise ConfigError(where, f"a Prefect Secret block named {value['secret']!r}") from None
    if isinstance(value, dict):
        return {k: _resolve(v, f"{where}.{k}") for k, v in value.items()}
    return value


def _targets_from_file(path: Path) -> tuple[dict[str, Target], str]:
    try:
        data = yaml.safe_load(path.expanduser().read_text())
    except OSError as exc:
        raise ConfigError("OPS_TARGETS_FILE", EXPECTED["OPS_TARGETS_FILE"], got=f"{path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError("OPS_TARGETS_FILE", "valid YAML", got=yaml_problem(exc, path)) from None
    if not isinstance(data, dict) or not isinstance(data.get("targets"), list) or not data["targets"]:
        raise ConfigError("OPS_TARGETS_FILE", EXPECTED["OPS_TARGETS_FILE"], got=str(path))
    targets: dict[str, Target] = {}
    for i, raw in enumerate(data["targets"]):
        where = f"targets[{i}]" + (f" ({raw.get('name')})" if isinstance(raw, dict) and raw.get("name") else "")
        if not isinstance(raw, dict):
            raise ConfigError(where, "a mapping with name, health_url, database_url and redis_url")
        try:
            target = Target(**_resolve(raw, where))
        except ValidationError as exc:
            err = _config_error(exc, source="file")
            raise ConfigError(f"{where}.{err.name}", err.expected, got=err.got) from None
        if target.name in targets:
            raise ConfigError(where, "a target name used once", got=target.name)
        targets[target.name] = target
    default = data.get("default", next(iter(targets)))
    if default not in targets:
        raise ConfigError("OPS_TARGETS_FILE default", f"one of {', '.join(targets)}", got=str(default))
    return targets, default


def _target_from_env(settings: Settings) -> Target:
    for name, value in (("HEALTH_URL", settings.health_url), ("DATABASE_URL", settings.database_url),
                        ("REDIS_URL", settings.redis_url)):
        if value is None:
            raise ConfigError(name, f"{EXPECTED[name]} (or OPS_TARGETS_FILE naming a targets file)")
    platform = Platform()
    if settings.render_service_id:
        platform = Platform(kind="render", api_url=settings.render_api_url, api_key=settings.render_api_key,
                            service_id=settings.render_service_id, owner_id=settings.render_owner_id,
                            services=_services_from_env(settings.render_services))
    try:
        return Target(name=settings.target_name, environment=settings.target_environment,
                      health_url=settings.health_url, database_url=settings.database_url,
                      redis_url=settings.redis_url, jwt_secret=settings.jwt_secret, platform=platform,
                      repository=_repository_from_env(settings))
    except ValidationError as exc:
        err = _config_error(exc, source="file")
        env_names = {"name": "TARGET_NAME", "environment": "TARGET_ENVIRONMENT", "health_url": "HEALTH_URL",
                     "database_url": "DATABASE_URL", "redis_url": "REDIS_URL", "repository.url": "OPS_REPO_URL",
                     "repository.code_host.repository": "GITHUB_REPOSITORY",
                     "repository.code_host.api_url": "GITHUB_API_URL"}
        raise ConfigError(env_names.get(err.name, err.name), err.expected, got=err.got) from None


def _services_from_env(value: str | None) -> list[PlatformService]:
    """RENDER_SERVICES=backend=srv-a,frontend=srv-b as the platform's services (empty: the backend alone)."""
    services = []
    for pair in (value or "").split(","):
        name, sep, service_id = pair.strip().partition("=")
        if not pair.strip():
            continue
        try:
            if not sep:
                raise ValueError(pair)
            services.append(PlatformService(name=name.strip(), id=service_id.strip()))
        except (ValueError, ValidationError):
            raise ConfigError("RENDER_SERVICES", EXPECTED["RENDER_SERVICES"], got=value or "") from None
    try:
        Platform(services=services)
    except ValidationError:
        raise ConfigError("RENDER_SERVICES", EXPECTED["RENDER_SERVICES"] + ", each name and id once",
                          got=value or "") from None
    return services


def _repository_from_env(settings: Settings) -> dict | None:
    """OPS_REPO_URL, OPS_REPO_PROJECTS=backend=npm,frontend=npm and GITHUB_* as the target's repository."""
    if not settings.repo_url:
        return None
    projects = []
    for pair in (settings.repo_projects or "").split(","):
        path, _, ecosystem = pair.strip().partition("=")
        if not path or ecosystem not in ("npm", "python"):
            raise ConfigError("OPS_REPO_PROJECTS", EXPECTED["OPS_REPO_PROJECTS"], got=settings.repo_projects or "")
        projects.append({"path": path, "ecosystem": ecosystem})
    code_host = None
    if settings.github_repository:
        if settings.github_token is None:
            raise ConfigError("GITHUB_TOKEN", "a token allowed to open pull requests on " + settings.github_repository)
        code_host = {"api_url": settings.github_api_url, "repository": settings.github_repository,
                     "token": settings.github_token}
    return {"url": settings.repo_url, "base": settings.repo_base, "projects": projects, "code_host": code_host,
            "npm_audit_registry": settings.npm_audit_registry, "osv_url": settings.osv_url}


def load_targets(settings: Settings | None = None) -> tuple[dict[str, Target], str]:
    """Every configured target by name, and the default one's name."""
    settings = settings or load_settings()
    if settings.targets_file is not None:
        targets, default = _targets_from_file(settings.targets_file)
    else:
        target = _target_from_env(settings)
        targets, default = {target.name: target}, target.name
    for t in targets.values():
        register_secret(t.database_url.get_secret_value(), t.redis_url.get_secret_value(),
                        t.jwt_secret.get_secret_value() if t.jwt_secret else None,
                        t.platform.api_key.get_secret_value() if t.platform.api_key else None,
                        t.repository.code_host.token.get_secret_value()
                        if t.repository and t.repository.code_host else None,
                        t.repository.url_password if t.repository else None)
    return targets, default


def get_target(name: str | None = None, settings: Settings | None = None) -> Target:
    """The named target (default: the configured default), or a ConfigError listing the valid names."""
    targets, default = load_targets(settings)
    name = name or default
    if name not in targets:
        raise ConfigError("target", f"one of {', '.join(sorted(targets))}", got=name)
    return targets[name]
