"""Fixtures for tests that talk to the Business Central emulator over real HTTPS.

Imported by tests/erp/conftest.py and by the pipeline tests (``from tests.erp.sandbox_fixtures
import ...``). The msal token provider and the HTTP client are the real ones; only the retry waits
are shortened so a test stays well under a few seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.erp.fixtures import FEE_ACCOUNT, SHIPPING_ACCOUNT, catalogue_items
from woo2d365.erp.businesscentral.auth import MsalTokenProvider
from woo2d365.erp.businesscentral.client import BusinessCentralClient
from woo2d365.erp.businesscentral.target import BusinessCentralTarget
from woo2d365.erp.odata_client import TokenProvider
from woo2d365.retries import RetryPolicy
from woo2d365.sandbox.businesscentral import BusinessCentralEmulator
from woo2d365.sandbox.tls import SandboxCA
from woo2d365.settings import DynamicsSettings, OrdersSettings, Settings
from woo2d365.store import SqlStore, open_store

FAST_RETRY = RetryPolicy(
    max_tries=4,
    base_seconds=0.01,
    max_backoff_seconds=0.05,
    max_retry_after_seconds=3.0,
    max_elapsed_seconds=10.0,
)


def settle(emulator: BusinessCentralEmulator, *, quiet: float = 0.05, timeout: float = 2.0) -> None:
    """Wait until the emulator has recorded every answered request.

    It records a request just after sending the answer, so a client can be a step ahead.
    """
    deadline = time.monotonic() + timeout
    seen, since = len(emulator.requests), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.01)
        count = len(emulator.requests)
        if count != seen:
            seen, since = count, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return


def seed_catalogue(emulator: BusinessCentralEmulator) -> None:
    """Every catalogue product as an item (SKU = item number), shipping and fee accounts."""
    for number, name, vat in catalogue_items():
        emulator.add_item(number, name, vat_percent=vat)
    emulator.add_account(SHIPPING_ACCOUNT, "Verzendkosten", vat_percent=Decimal("21"))
    emulator.add_account(FEE_ACCOUNT, "Overige opbrengsten", vat_percent=Decimal("21"))


def make_settings(
    emulator: BusinessCentralEmulator,
    *,
    orders: dict[str, Any] | None = None,
    dynamics: dict[str, Any] | None = None,
) -> Settings:
    """Settings pointing at the emulator (accounts configured, short timeout)."""
    dynamics_values: dict[str, Any] = {
        "tenant_id": emulator.tenant_id,
        "client_id": emulator.client_id,
        "client_secret": emulator.client_secret,
        "environment": emulator.environment,
        "company": "CRONUS NL",
        "api_url": emulator.url,
        "authority_host": emulator.authority_host,
        "scope": emulator.scope,
        "timeout_seconds": 5,
        **(dynamics or {}),
    }
    orders_values: dict[str, Any] = {
        "shipping_account": SHIPPING_ACCOUNT,
        "fee_account": FEE_ACCOUNT,
        **(orders or {}),
    }
    return Settings(
        dynamics=DynamicsSettings(**dynamics_values), orders=OrdersSettings(**orders_values)
    )


def make_client(
    settings: Settings,
    tokens: TokenProvider | None = None,
    *,
    retry: RetryPolicy = FAST_RETRY,
    page_size: int | None = None,
) -> BusinessCentralClient:
    """The real client with the real msal provider (fresh per call: its own token cache)."""
    return BusinessCentralClient(
        settings.dynamics,
        tokens or MsalTokenProvider(settings.dynamics),
        retry=retry,
        page_size=page_size,
    )


def make_target(
    settings: Settings,
    store: SqlStore,
    client: BusinessCentralClient | None = None,
    *,
    clock: Callable[[], datetime] | None = None,
) -> BusinessCentralTarget:
    """The Business Central target over the real client (on the test's clock when given)."""
    target = BusinessCentralTarget(settings, store, client or make_client(settings))
    if clock is not None:
        target.clock = clock
    return target


@pytest.fixture(scope="session")
def sandbox_ca() -> Iterator[SandboxCA]:
    """One throwaway CA for the whole session."""
    ca = SandboxCA()
    yield ca
    ca.cleanup()


@pytest.fixture
def bc(sandbox_ca: SandboxCA, monkeypatch: pytest.MonkeyPatch) -> Iterator[BusinessCentralEmulator]:
    """A started emulator with the catalogue, trusted through REQUESTS_CA_BUNDLE (the contract)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sandbox_ca.ca_path))
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    emulator = BusinessCentralEmulator(ca=sandbox_ca)
    seed_catalogue(emulator)
    with emulator:
        yield emulator


@pytest.fixture
def bc_settings(bc: BusinessCentralEmulator) -> Settings:
    """Settings for the ``bc`` emulator."""
    return make_settings(bc)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqlStore]:
    """A fresh SQLite state store."""
    store = open_store(f"sqlite:///{tmp_path / 'woo2d365.db'}")
    yield store
    store.close()
