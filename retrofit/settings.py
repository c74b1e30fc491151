"""Settings: one TOML file plus RETROFIT_* environment variables; secrets only from the environment.

Precedence (highest first): environment, TOML file, defaults. The TOML file is found at
``$RETROFIT_CONFIG`` or ``./retrofit.toml``. A secret written into the TOML file is refused with an error that
names the environment variable to use instead, so a token never ends up in a repository.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

SECRET_FIELDS = ("influx_token", "influx_password", "mqtt_password", "records_url_password", "secret_key")


class SettingsError(ValueError):
    """The settings file or environment is wrong; the message says what to change."""


class Settings(BaseSettings):
    """Effective settings of one retrofit process."""

    model_config = SettingsConfigDict(env_prefix="RETROFIT_", extra="forbid")

    data_dir: Path = Field(default=Path("retrofit-data"), description="where embedded databases and buffers live")
    site: Path | None = Field(default=None, description="site file or folder")
    # telemetry
    influx_url: str | None = Field(default=None, description="e.g. http://127.0.0.1:8086; unset = embedded store")
    influx_database: str = "retrofit"
    influx_username: str | None = None
    influx_password: SecretStr | None = None
    influx_token: SecretStr | None = None
    influx_raw_retention: str = Field(default="400d", description="how long raw readings are kept")
    influx_verify_tls: bool = True
    buffer_max_mb: int = Field(default=512, ge=1)
    # records
    records_url: str | None = Field(default=None, description="SQLAlchemy URL; unset = SQLite in data_dir")
    # mqtt
    mqtt_url: str | None = Field(default=None, description="e.g. mqtt://127.0.0.1:1883; unset = no broker")
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    mqtt_topic_root: str = "retrofit"
    # alarm flood control (rules/alarms.py FloodControl; ISA-18.2: a flood is > 10 alarms in 10 minutes)
    alarm_flood_window_s: float = Field(default=600.0, gt=0, description="rate-limit window, event time (s)")
    alarm_building_limit: int = Field(default=10, ge=0, description="new alarms per building per window; 0 = off")
    alarm_rule_limit: int = Field(default=5, ge=0, description="new alarms of one rule per building per window")
    alarm_rule_limits: dict[str, int] = Field(default_factory=dict, description="rule id -> its own limit")
    alarm_group_min: int = Field(default=3, ge=0, description="points of one rule raised at one instant that "
                                 "become one grouped alarm; 0 = never group")
    # dashboard / api
    dashboard_port: int = 8501
    api_port: int = 8600
    session_timeout_min: int = 30
    secret_key: SecretStr | None = None
    language: str = "zh"
    map_file: Path | None = Field(default=None, description="district base map GeoJSON; unset = the shipped one")
    log_level: str = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls))

    @property
    def embedded_store_path(self) -> Path:
        return self.data_dir / "telemetry.db"

    @property
    def buffer_dir(self) -> Path:
        return self.data_dir / "buffer"

    @property
    def effective_records_url(self) -> str:
        return self.records_url or f"sqlite:///{self.data_dir / 'records.db'}"

    def masked(self) -> dict[str, Any]:
        """Every setting with secrets shown as '***' (or unset)."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            v = getattr(self, name)
            if isinstance(v, SecretStr):
                v = "***"
            elif isinstance(v, Path):
                v = str(v)
            out[name] = v
        for url_field in ("influx_url", "mqtt_url", "records_url"):
            if out.get(url_field):
                out[url_field] = mask_url(out[url_field])
        return out


def mask_url(url: str) -> str:
    """Hide a password embedded in a URL (scheme://user:pass@host -> scheme://user:***@host)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def config_path() -> Path:
    return Path(os.environ.get("RETROFIT_CONFIG", "retrofit.toml"))


class _TomlSource(PydanticBaseSettingsSource):
    """Reads the TOML file; refuses secrets in it."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = config_path()
        if not path.exists():
            if "RETROFIT_CONFIG" in os.environ:
                raise SettingsError(f"{path}: settings file not found (RETROFIT_CONFIG points here)")
            return {}
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path}: {exc}") from None
        data = data.get("retrofit", data)
        for name in SECRET_FIELDS:
            if name in data:
                raise SettingsError(
                    f"{path}: {name} is a secret and must not be in a file; "
                    f"set RETROFIT_{name.upper()} in the environment instead"
                )
        unknown = set(data) - set(Settings.model_fields)
        if unknown:
            raise SettingsError(f"{path}: unknown setting(s) {', '.join(sorted(unknown))}; "
                                f"see `retrofit config show` for the names")
        return data


def load_settings(**overrides: Any) -> Settings:
    """Effective settings (environment > TOML file > defaults), with keyword overrides on top.

    A bad value raises SettingsError naming the setting and where it came from (never the value: it may be
    a secret).
    """
    from pydantic import ValidationError

    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else "(settings)"
            env = f"RETROFIT_{name.upper()}"
            where = ("argument" if name in given else f"environment variable {env}" if env in os.environ
                     else str(config_path()))
            lines.append(f"{name} (from {where}): {err['msg']}")
        raise SettingsError("invalid settings: " + "; ".join(lines)) from None


def settings_or_exit(**overrides: Any) -> Settings:
    """Settings for a command: a bad setting is printed as a clear error and the command exits 1."""
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        from retrofit.cli import fail

        raise fail(str(exc)) from None


def settings_or_none(**overrides: Any) -> Settings | None:
    """Settings where they only supply defaults (a broker URL, a data dir): None when they cannot be read."""
    try:
        return load_settings(**overrides)
    except SettingsError:
        return None
