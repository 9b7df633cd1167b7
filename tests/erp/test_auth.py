"""Real msal against the emulator's identity provider over HTTPS: caching, refresh, clear errors."""

from __future__ import annotations

import socket

import pytest

from tests.erp.sandbox_fixtures import make_client, make_settings, settle
from woo2d365.erp.businesscentral.auth import (
    MsalTokenProvider,
    ca_bundle,
    is_microsoft_login_host,
    shared_token_provider,
)
from woo2d365.errors import DynamicsAuthenticationError, DynamicsUnreachable
from woo2d365.sandbox.businesscentral import BusinessCentralEmulator
from woo2d365.sandbox.tls import SandboxCA
from woo2d365.settings import Settings


def test_one_token_serves_many_api_calls(
    bc: BusinessCentralEmulator, bc_settings: Settings
) -> None:
    client = make_client(bc_settings)
    for _ in range(6):
        client.company_id()
        list(client.items())
    assert bc.token_requests == 1
    settle(bc)
    assert len(bc.requests) == 7  # companies once, items six times


def test_a_revoked_token_is_refreshed_once_and_the_call_succeeds(
    bc: BusinessCentralEmulator, bc_settings: Settings
) -> None:
    client = make_client(bc_settings)
    client.company_id()
    bc.revoke_tokens()
    assert len(list(client.items())) == 16
    assert bc.token_requests == 2
    settle(bc)
    statuses = [r.status for r in bc.requests]
    assert statuses == [200, 401, 200]


class _FixedToken:
    """A provider whose token the API never accepts."""

    def __init__(self) -> None:
        self.invalidated = 0

    def token(self) -> str:
        return "not-a-token"

    def invalidate(self, token: str | None = None) -> None:
        self.invalidated += 1


def test_a_token_refused_twice_is_an_authentication_error(
    bc: BusinessCentralEmulator, bc_settings: Settings
) -> None:
    tokens = _FixedToken()
    client = make_client(bc_settings, tokens)
    with pytest.raises(DynamicsAuthenticationError, match="Microsoft Entra applications"):
        client.company_id()
    assert tokens.invalidated == 1
    settle(bc)
    assert [r.status for r in bc.requests] == [401, 401]


@pytest.mark.parametrize(
    ("override", "setting"),
    [
        ({"client_secret": "wrong-secret-3f9a"}, "dynamics.client_secret"),
        ({"tenant_id": "11111111-2222-3333-4444-555555555555"}, "dynamics.tenant_id"),
        ({"scope": "https://api.example.org/.default"}, "dynamics.scope"),
        ({"client_id": "someone-else"}, "dynamics.client_id"),
    ],
)
def test_refused_credentials_name_the_setting_and_never_the_secret(
    bc: BusinessCentralEmulator, override: dict[str, str], setting: str
) -> None:
    settings = make_settings(bc, dynamics=override)
    provider = MsalTokenProvider(settings.dynamics)
    with pytest.raises(DynamicsAuthenticationError) as caught:
        provider.token()
    message = str(caught.value)
    assert setting in message
    assert "\n" not in message
    assert bc.client_secret not in message
    assert "wrong-secret-3f9a" not in message


def test_instance_discovery_is_off_for_a_host_that_is_not_microsoft(
    bc: BusinessCentralEmulator, bc_settings: Settings
) -> None:
    # With discovery on, msal would first ask login.microsoftonline.com (unreachable here).
    assert not is_microsoft_login_host(bc.authority_host)
    assert MsalTokenProvider(bc_settings.dynamics).token()
    assert is_microsoft_login_host("https://login.microsoftonline.com")
    assert is_microsoft_login_host("https://login.microsoftonline.us/")


def test_the_msal_app_is_built_on_the_first_token_not_before(bc: BusinessCentralEmulator) -> None:
    settings = make_settings(bc)
    provider = MsalTokenProvider(settings.dynamics)
    bc.stop()  # a constructor that talked to the network would fail here
    assert provider.scopes == [bc.scope]


def test_one_provider_per_process_and_app_registration(bc: BusinessCentralEmulator) -> None:
    first = shared_token_provider(make_settings(bc).dynamics)
    assert shared_token_provider(make_settings(bc).dynamics) is first
    other = shared_token_provider(make_settings(bc, dynamics={"client_id": "x"}).dynamics)
    assert other is not first


def test_an_unreachable_identity_provider_is_reported_as_unreachable(
    bc: BusinessCentralEmulator,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = make_settings(bc, dynamics={"authority_host": f"https://127.0.0.1:{port}"})
    with pytest.raises(DynamicsUnreachable):
        MsalTokenProvider(settings.dynamics).token()


def test_an_untrusted_certificate_is_reported_with_the_variables_to_set(
    bc: BusinessCentralEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    settings = make_settings(bc)
    with pytest.raises(DynamicsUnreachable, match="REQUESTS_CA_BUNDLE or SSL_CERT_FILE"):
        MsalTokenProvider(settings.dynamics).token()


def test_ssl_cert_file_is_trusted_for_tokens_and_api_calls(
    bc: BusinessCentralEmulator, sandbox_ca: SandboxCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.setenv("SSL_CERT_FILE", str(sandbox_ca.ca_path))
    assert ca_bundle() == str(sandbox_ca.ca_path)
    client = make_client(make_settings(bc))
    assert client.company_id() == bc.company_id()
