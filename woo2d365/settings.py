"""Settings: one TOML file plus ``WOO2D365_<SECTION>__<KEY>`` environment overrides.

The file is ``--config FILE``, else ``$WOO2D365_CONFIG``, else ``./woo2d365.toml``. Environment
variables win over the file. Every problem becomes one :class:`ConfigError` line naming the key
and where it came from, never a pydantic traceback.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal, get_origin
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from woo2d365.errors import ConfigError

ENV_PREFIX = "WOO2D365_"
DEFAULT_CONFIG = "woo2d365.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WooCommerceSettings(_Section):
    """``[woocommerce]``: where the shop is and which orders are taken."""

    url: str = ""
    consumer_key: SecretStr = SecretStr("")
    consumer_secret: SecretStr = SecretStr("")
    auth: Literal["basic", "query", "oauth1"] = "basic"
    statuses: list[str] = Field(default_factory=lambda: ["processing", "completed"])
    start_date: datetime | None = None
    page_size: int = Field(default=100, ge=1, le=100)
    timeout_seconds: float = Field(default=30, gt=0)
    write_back: bool = True
    max_concurrency: int = Field(default=5, ge=1, le=20)
    overlap_minutes: int = Field(default=10, ge=0)

    @field_validator("url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.strip().rstrip("/")

    @field_validator("statuses")
    @classmethod
    def _normalise_statuses(cls, value: list[str]) -> list[str]:
        # WooCommerce's status slugs are lower-case; "Processing " in a config means processing.
        return [status.strip().lower() for status in value if status.strip()]

    def takes(self, status: str) -> bool:
        """True when orders in this shop status are taken (the one place of this rule)."""
        return status.strip().lower() in self.statuses


class DynamicsSettings(_Section):
    """``[dynamics]``: the Dynamics 365 product, tenant, app registration and limits."""

    product: Literal["business-central", "finance-operations"] = "business-central"
    tenant_id: str = ""
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    environment: str = "production"
    company: str = ""
    api_url: str = "https://api.businesscentral.dynamics.com"
    authority_host: str = "https://login.microsoftonline.com"
    scope: str = "https://api.businesscentral.dynamics.com/.default"
    max_concurrency: int = Field(default=5, ge=1, le=5)
    timeout_seconds: float = Field(default=60, gt=0)
    request_limit_seconds: float = Field(default=600, gt=0)
    requests_per_5_minutes: int = Field(default=6000, ge=1, le=1_000_000)
    # finance-operations only
    fo_url: str = ""
    legal_entity: str = ""
    customer_group: str = ""
    fo_order_numbers: Literal["own", "sequence"] = "own"

    @field_validator("api_url", "authority_host", "fo_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.strip().rstrip("/")

    @field_validator("legal_entity")
    @classmethod
    def _data_area(cls, value: str) -> str:
        # F&O answers dataAreaId in lower case and compares it case-insensitively.
        return value.strip().lower()

    @property
    def fo_scope(self) -> str:
        """The F&O token scope: the environment URL, lower case, no trailing slash."""
        return self.fo_url.strip().rstrip("/").lower() + "/.default"


class OrdersSettings(_Section):
    """``[orders]``: how a shop order becomes a sales order."""

    document_prefix: str = "WC-"
    customer_mode: Literal["per-email", "fixed"] = "per-email"
    customer_number: str = ""
    sku_match: Literal["map", "direct", "map-then-direct"] = "map-then-direct"
    shipping_account: str = ""
    fee_account: str = ""
    total_tolerance: float = Field(default=0.01, ge=0)
    max_attempts: int = Field(default=5, ge=1)
    tax_codes: dict[str, str] = Field(default_factory=dict)
    rounding_account: str = ""

    @field_validator("tax_codes")
    @classmethod
    def _rates_and_codes(cls, value: dict[str, str]) -> dict[str, str]:
        checked: dict[str, str] = {}
        for rate, code in value.items():
            try:
                percent = Decimal(str(rate).strip())
            except InvalidOperation:
                raise ValueError(f'{rate!r} is not a VAT rate in percent (e.g. "21")') from None
            if not Decimal(0) <= percent <= Decimal(100):
                raise ValueError(f"VAT rate {rate} must be between 0 and 100")
            code = str(code).strip().upper()
            if not code or len(code) > 20:
                raise ValueError(f"tax code for {rate} % must be 1 to 20 characters")
            checked[format(percent.normalize(), "f")] = code
        return checked


class StateSettings(_Section):
    """``[state]``: where the state store lives."""

    url: SecretStr = SecretStr("sqlite:///woo2d365.db")
    lease_seconds: float = Field(default=120, ge=1, le=300)  # run lock of a frozen process

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: SecretStr) -> SecretStr:
        scheme = urlsplit(value.get_secret_value()).scheme
        if scheme not in ("sqlite", "mysql", "mariadb", "mysql+pymysql"):
            raise ValueError(f"scheme {scheme!r} is not supported; use sqlite:///PATH or mysql://…")
        return value


class EmailAlertSettings(_Section):
    """``[alerts.email]``: SMTP delivery of alert digests."""

    smtp_host: str = ""
    smtp_port: int = 587
    starttls: bool = True
    username: str = ""
    password: SecretStr = SecretStr("")
    sender: str = ""
    recipients: list[str] = Field(default_factory=list)


class WebhookAlertSettings(_Section):
    """``[alerts.webhook]``: a Teams, Slack or any JSON endpoint."""

    url: SecretStr = SecretStr("")


class AlertsSettings(_Section):
    """``[alerts]``: channels and de-duplication."""

    repeat_after_minutes: int = Field(default=240, ge=0)
    max_wait_hours: float = Field(default=24, ge=0)  # 0: never
    email: EmailAlertSettings = Field(default_factory=EmailAlertSettings)
    webhook: WebhookAlertSettings = Field(default_factory=WebhookAlertSettings)


class MonitoringSettings(_Section):
    """``[monitoring]``: what ``status --check`` and monitoring expect of the cron job."""

    expected_interval_minutes: int = Field(default=5, ge=1)
    critical_after_minutes: int = Field(default=60, ge=1)


class ShipmentsSettings(_Section):
    """``[shipments]``: Dynamics shipments and invoices back to the shop order."""

    enabled: bool = False
    complete_status: str = "completed"
    notify_customer: bool = True
    tracking_api: str = ""  # "publisher/group/version/entitySet" of a custom API page
    carriers: dict[str, str] = Field(default_factory=dict)  # agent code = "Name|URL with %1"
    warn_unshipped_after_days: int = Field(default=0, ge=0)  # status --check; 0 = off

    @field_validator("complete_status")
    @classmethod
    def _status_slug(cls, value: str) -> str:
        return value.strip().lower()


class RefundsSettings(_Section):
    """``[refunds]``: shop refunds of pushed orders as sales credit memos."""

    enabled: bool = False
    account: str = ""
    post: bool = False


class StockSettings(_Section):
    """``[stock]``: Dynamics inventory as shop stock for mapped SKUs."""

    enabled: bool = False
    reserve: int = Field(default=0, ge=0)
    max_age_minutes: int = Field(default=180, ge=1)  # status --check warns when stock is older


class _Environment(EnvSettingsSource):
    """The ``WOO2D365_*`` variables, where a list may also be given comma-separated
    (``WOO2D365_WOOCOMMERCE__STATUSES=processing,completed``) instead of as JSON."""

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError:
            if field is None or get_origin(field.annotation) is not list:
                raise
            inner = str(value).strip().removeprefix("[").removesuffix("]")
            return [part.strip().strip("'\"") for part in inner.split(",") if part.strip()]


class Settings(BaseSettings):
    """All settings of one run."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="forbid",
    )

    woocommerce: WooCommerceSettings = Field(default_factory=WooCommerceSettings)
    dynamics: DynamicsSettings = Field(default_factory=DynamicsSettings)
    orders: OrdersSettings = Field(default_factory=OrdersSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    shipments: ShipmentsSettings = Field(default_factory=ShipmentsSettings)
    refunds: RefundsSettings = Field(default_factory=RefundsSettings)
    stock: StockSettings = Field(default_factory=StockSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file arrives as init kwargs; the environment must win over it.
        return (_Environment(settings_cls), init_settings)


@dataclass(frozen=True)
class LoadedSettings:
    """Settings together with the file they came from (for messages)."""

    settings: Settings
    source: str  # the config file's name, or "defaults" when none was found

    def require(self, *keys: str) -> None:
        """Raise :class:`ConfigError` for the first of ``keys`` (``section.key``) that is empty."""
        for key in keys:
            section, _, name = key.partition(".")
            value: Any = getattr(getattr(self.settings, section), name)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if value is None or (isinstance(value, str) and not value.strip()):
                raise ConfigError(f"{key} is required ({self.where(key)})")

    def where(self, key: str) -> str:
        """Where ``key`` is set: the environment variable's name or the config file."""
        env_name = ENV_PREFIX + key.replace(".", "__").upper()
        if any(name.upper() == env_name for name in os.environ):
            return env_name
        return self.source


def resolve_config_path(explicit: str | os.PathLike[str] | None) -> tuple[Path, bool]:
    """Return the config path to read and whether the user named it (then it must exist)."""
    if explicit:
        return Path(explicit), True
    env_value = os.environ.get("WOO2D365_CONFIG")
    if env_value:
        return Path(env_value), True
    return Path(DEFAULT_CONFIG), False


def load_settings(config: str | os.PathLike[str] | None = None) -> LoadedSettings:
    """Load settings from the TOML file and the environment; :class:`ConfigError` on problems."""
    path, named = resolve_config_path(config)
    data: dict[str, Any] = {}
    source = path.name if path.exists() or named else "defaults"
    if path.exists():
        try:
            with path.open("rb") as handle:
                data = tomllib.load(handle)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    elif named:
        raise ConfigError(f"config file {path} does not exist")
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, data)) from None
    except SettingsError:  # a WOO2D365_* variable whose value cannot be read
        raise ConfigError(
            f"{' / '.join(_unreadable_tables()) or 'a ' + ENV_PREFIX + '* variable'} "
            f"(environment) is not a table: give it as JSON, e.g. "
            f'{ENV_PREFIX}ORDERS__TAX_CODES=\'{{"21": "HOOG"}}\', or one key per variable, '
            f"e.g. {ENV_PREFIX}ORDERS__TAX_CODES__21=HOOG"
        ) from None
    if data:
        _warn_if_readable_by_others(path, data)
    return LoadedSettings(settings=settings, source=source)


def _unreadable_tables() -> list[str]:
    """The environment variables that set a table (a ``dict`` or a sub-section) to something
    not JSON."""
    names = []
    for section, section_field in Settings.model_fields.items():
        section_type = section_field.annotation
        fields = section_type.model_fields if isinstance(section_type, type) else {}
        for key, key_field in fields.items():
            annotation = key_field.annotation
            nested = isinstance(annotation, type) and issubclass(annotation, BaseModel)
            if get_origin(annotation) is not dict and not nested:
                continue
            name = f"{ENV_PREFIX}{section}__{key}".upper()
            value = next((v for k, v in os.environ.items() if k.upper() == name), None)
            if value is None:
                continue
            try:
                json.loads(value)
            except ValueError:
                names.append(name)
    return names


_SECRET_KEYS = (
    ("woocommerce", "consumer_key"),
    ("woocommerce", "consumer_secret"),
    ("dynamics", "client_secret"),
    ("alerts", "email", "password"),
    ("alerts", "webhook", "url"),
)


def secrets_in(data: Mapping[str, Any]) -> list[str]:
    """Names of the secret settings a config file's ``data`` holds itself (a non-blank secret, or
    a password in ``state.url``), not those the environment gives."""
    found = []
    for keys in _SECRET_KEYS:
        value: Any = data
        for key in keys:
            value = value.get(key) if isinstance(value, Mapping) else None
        if isinstance(value, str) and value.strip():
            found.append(".".join(keys))
    state = data.get("state")
    state_url = state.get("url") if isinstance(state, Mapping) else None
    if isinstance(state_url, str) and urlsplit(state_url).password:
        found.append("state.url password")
    return found


def _warn_if_readable_by_others(path: Path, data: Mapping[str, Any]) -> None:
    """One warning line when a config file holding secrets can be read by other users."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if os.name != "posix" or not mode & (stat.S_IRGRP | stat.S_IROTH):
        return
    if secrets_in(data):
        logging.getLogger("woo2d365").warning(
            "config file %s holds secrets and other users can read it (mode %s): chmod 600 %s",
            path,
            oct(stat.S_IMODE(mode))[2:].zfill(4),
            path,
        )


def _describe(exc: ValidationError, source: str, data: Mapping[str, Any]) -> str:
    """Turn the first pydantic error into one line: ``key: problem (where)``."""
    error = exc.errors()[0]
    key = ".".join(str(part) for part in error["loc"])
    env_name = ENV_PREFIX + key.replace(".", "__").upper()
    where = env_name if any(n.upper() == env_name for n in os.environ) else source
    if error["type"] == "extra_forbidden":
        return f"{key} is not a known setting ({where})"
    if error["type"] == "missing":
        return f"{key} is required ({where})"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return f"{key}: {message} ({where})"


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.username:
        netloc = f"{parts.username}:***@{netloc}"
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
