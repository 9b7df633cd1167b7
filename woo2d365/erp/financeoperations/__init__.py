"""Dynamics 365 Finance & Operations (the ``/data`` OData endpoint) target.

:func:`open_target` wires the real pieces (msal token provider with scope ``fo_url`` +
``/.default``, HTTP client, state store) in one place; tests build
:class:`FinanceOperationsTarget` with their own client or token provider.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from woo2d365.erp.businesscentral.auth import shared_token_provider
from woo2d365.erp.financeoperations.client import FinanceOperationsClient
from woo2d365.erp.financeoperations.target import FinanceOperationsTarget
from woo2d365.erp.odata_client import TokenProvider
from woo2d365.retries import RetryPolicy
from woo2d365.settings import DynamicsSettings, Settings
from woo2d365.store.mirror import MirrorAndSkuMap

__all__ = [
    "REQUIRED_KEYS",
    "FinanceOperationsClient",
    "FinanceOperationsTarget",
    "open_client",
    "open_target",
    "token_settings",
]

REQUIRED_KEYS = (
    "dynamics.tenant_id",
    "dynamics.client_id",
    "dynamics.client_secret",
    "dynamics.fo_url",
    "dynamics.legal_entity",
)


def token_settings(dynamics: DynamicsSettings) -> DynamicsSettings:
    """The settings msal gets: ``scope`` = ``fo_url`` lower-cased, without trailing slash,
    + ``/.default`` (F&O refuses a token whose audience is anything else)."""
    return dynamics.model_copy(update={"scope": dynamics.fo_scope})


def open_client(
    dynamics: DynamicsSettings,
    *,
    tokens: TokenProvider | None = None,
    retry: RetryPolicy | None = None,
) -> FinanceOperationsClient:
    """The F&O client with the process-wide msal token provider for its scope."""
    provider = tokens or shared_token_provider(token_settings(dynamics))
    return FinanceOperationsClient(dynamics, provider, retry=retry)


def open_target(
    settings: Settings,
    store: MirrorAndSkuMap,
    *,
    tokens: TokenProvider | None = None,
    retry: RetryPolicy | None = None,
    clock: Callable[[], datetime] | None = None,
) -> FinanceOperationsTarget:
    """The F&O target for one run."""
    client = open_client(settings.dynamics, tokens=tokens, retry=retry)
    if clock is None:
        return FinanceOperationsTarget(settings, store, client)
    return FinanceOperationsTarget(settings, store, client, clock=clock)
