"""Fixtures for the WooCommerce side: the shop emulator over real sockets and clients for it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from woo2d365.sandbox.shop import ShopEmulator
from woo2d365.sandbox.tls import SandboxCA
from woo2d365.settings import WooCommerceSettings
from woo2d365.shop.client import WooClient

CONSUMER_KEY = "ck_" + "4f1c0e9a7b2d" * 3 + "0a1b"
CONSUMER_SECRET = "cs_" + "9e8d7c6b5a4f" * 3 + "3c2d"
SECRETS = (CONSUMER_KEY, CONSUMER_SECRET)


class Waits(list[float]):
    """The waits the client asked for instead of sleeping (injected as ``sleep``)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture(scope="session")
def sandbox_ca() -> Iterator[SandboxCA]:
    """One throwaway CA for every HTTPS emulator of the session."""
    ca = SandboxCA()
    yield ca
    ca.cleanup()


@pytest.fixture
def trust_sandbox(sandbox_ca: SandboxCA, monkeypatch: pytest.MonkeyPatch) -> SandboxCA:
    """Make requests trust the sandbox CA the standard way (REQUESTS_CA_BUNDLE)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sandbox_ca.ca_path))
    return sandbox_ca


ShopFactory = Callable[..., ShopEmulator]


@contextmanager
def running_shops(ca: SandboxCA) -> Iterator[ShopFactory]:
    """A factory of started shop emulators (HTTPS with ``ca`` unless ``https=False``)."""
    started: list[ShopEmulator] = []

    def make(**options: Any) -> ShopEmulator:
        options.setdefault("consumer_key", CONSUMER_KEY)
        options.setdefault("consumer_secret", CONSUMER_SECRET)
        if options.setdefault("https", True):
            options.setdefault("ca", ca)
        shop = ShopEmulator(**options)
        shop.start()
        started.append(shop)
        return shop

    try:
        yield make
    finally:
        for shop in started:
            shop.stop()


@pytest.fixture
def make_shop(trust_sandbox: SandboxCA) -> Iterator[ShopFactory]:
    """Start shop emulators; they stop after the test."""
    with running_shops(trust_sandbox) as make:
        yield make


@pytest.fixture
def shop(make_shop: ShopFactory) -> ShopEmulator:
    """An HTTPS shop in Europe/Berlin with HPOS and a read/write key, no orders yet."""
    return make_shop()


def woo_settings(shop: ShopEmulator, **overrides: Any) -> WooCommerceSettings:
    """Settings pointing at ``shop`` with the test key, short timeouts and Basic auth."""
    values: dict[str, Any] = {
        "url": shop.url,
        "consumer_key": CONSUMER_KEY,
        "consumer_secret": CONSUMER_SECRET,
        "auth": "basic",
        "timeout_seconds": 2,
        "page_size": 100,
        "statuses": ["processing", "completed"],
    }
    values.update(overrides)
    return WooCommerceSettings(**values)


def woo_client(
    shop: ShopEmulator, waits: Waits | None = None, *, max_tries: int = 4, **overrides: Any
) -> WooClient:
    """A real client for ``shop`` that records its waits instead of sleeping."""
    return WooClient(
        woo_settings(shop, **overrides),
        max_tries=max_tries,
        sleep=waits if waits is not None else Waits(),
    )


def assert_no_secret(text: str) -> None:
    """Neither the consumer key nor the secret appears in ``text``."""
    for secret in SECRETS:
        assert secret not in text
        assert secret[3:] not in text
