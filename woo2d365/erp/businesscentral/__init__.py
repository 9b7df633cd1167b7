"""Dynamics 365 Business Central (API v2.0) target.

:func:`open_target` wires the real pieces (msal token provider, HTTP client, state store) in one
place; tests build :class:`BusinessCentralTarget` with their own client or token provider.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from woo2d365.erp.businesscentral.auth import MsalTokenProvider, shared_token_provider
from woo2d365.erp.businesscentral.client import BusinessCentralClient
from woo2d365.erp.businesscentral.target import BusinessCentralTarget
from woo2d365.erp.odata_client import TokenProvider
from woo2d365.errors import ConfigError
from woo2d365.retries import RetryPolicy
from woo2d365.settings import Settings
from woo2d365.store.mirror import DynamicsMirror

__all__ = [
    "BusinessCentralClient",
    "BusinessCentralTarget",
    "MsalTokenProvider",
    "RetryPolicy",
    "TokenProvider",
    "open_target",
    "require_dynamics_settings",
]

REQUIRED_KEYS = ("tenant_id", "client_id", "client_secret", "company")


def require_dynamics_settings(settings: Settings) -> None:
    """:class:`ConfigError` naming the first empty required ``dynamics.*`` key."""
    for key in REQUIRED_KEYS:
        value = getattr(settings.dynamics, key)
        text = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
        if not text.strip():
            raise ConfigError(f"dynamics.{key} is required")


def open_target(
    settings: Settings,
    store: DynamicsMirror,
    *,
    tokens: TokenProvider | None = None,
    retry: RetryPolicy | None = None,
    clock: Callable[[], datetime] | None = None,
) -> BusinessCentralTarget:
    """The Business Central target for one run, with the process-wide msal token provider."""
    require_dynamics_settings(settings)
    client = BusinessCentralClient(
        settings.dynamics, tokens or shared_token_provider(settings.dynamics), retry=retry
    )
    if clock is None:
        return BusinessCentralTarget(settings, store, client)
    return BusinessCentralTarget(settings, store, client, clock=clock)
