"""``doctor``'s checks of a Finance & Operations environment (nothing is written).

Token (with the scope ``fo_url`` + ``/.default``), whether F&O accepts it (a 401 here means the
app is not on F&O's *Microsoft Entra applications* page), the legal entity, the entity sets the
tool uses in ``$metadata``, and the customer group, service items and fixed customer the orders
refer to.
"""

from __future__ import annotations

from typing import Literal, Protocol

from woo2d365.erp.businesscentral.auth import MsalTokenProvider
from woo2d365.erp.financeoperations import open_client, token_settings
from woo2d365.erp.financeoperations.client import (
    ENTITY_SETS,
    ITEMS_SET,
    FinanceOperationsClient,
)
from woo2d365.erp.odata_query import odata_string
from woo2d365.errors import DynamicsAuthenticationError, DynamicsError, DynamicsUnreachable
from woo2d365.retries import RetryPolicy
from woo2d365.settings import Settings


class Add(Protocol):
    """``report.add`` of the doctor's report: one row."""

    def __call__(
        self, name: str, result: Literal["ok", "warn", "fail", "skip"], detail: str, fix: str = ""
    ) -> object: ...


REGISTER_APP = (
    "in F&O, open System administration > Setup > Microsoft Entra applications and add a row "
    "with dynamics.client_id and a user with the roles to read and create sales orders and "
    "customers; check that dynamics.fo_url is the environment URL"
)


def check_finance_operations(add: Add, settings: Settings, *, tries: int = 2) -> None:
    """Add one row per check to the doctor's report."""
    dynamics = settings.dynamics
    tokens = MsalTokenProvider(token_settings(dynamics))
    try:
        tokens.token()
    except DynamicsAuthenticationError as exc:
        add(
            "Dynamics: token",
            "fail",
            str(exc),
            "check dynamics.client_secret, dynamics.client_id, dynamics.tenant_id and "
            "dynamics.fo_url (the scope is fo_url + /.default)",
        )
        return
    except DynamicsError as exc:
        add("Dynamics: token", "fail", str(exc), "check dynamics.authority_host and the network")
        return
    add("Dynamics: token", "ok", f"issued by {dynamics.authority_host} for {dynamics.fo_scope}")
    retry = RetryPolicy(
        max_tries=tries, base_seconds=0.5, max_backoff_seconds=2.0, max_elapsed_seconds=30
    )
    client = open_client(dynamics, tokens=tokens, retry=retry)
    try:
        try:
            entities = client.legal_entities()
        except DynamicsAuthenticationError as exc:
            add("Dynamics: app registered in F&O", "fail", str(exc), REGISTER_APP)
            return
        except DynamicsError as exc:
            fix = "check dynamics.fo_url and that this host can reach it"
            if not isinstance(exc, DynamicsUnreachable) and exc.status == 403:
                fix = "give the F&O user of the app roles that can read legal entities"
            add("Dynamics: legal entity", "fail", str(exc), fix)
            return
        add("Dynamics: app registered in F&O", "ok", "F&O accepts the token")
        wanted = dynamics.legal_entity
        if wanted not in entities:
            add(
                "Dynamics: legal entity",
                "fail",
                f"legal entity {wanted!r} not found; F&O has {', '.join(sorted(entities))}",
                "correct dynamics.legal_entity (the dataAreaId, e.g. usmf)",
            )
            return
        add("Dynamics: legal entity", "ok", wanted)
        _check_sets(add, client)
        _check_references(add, client, settings)
        add(
            "Dynamics: permission to create",
            "skip",
            "not checked: only a create shows it, and doctor creates nothing",
            "",
        )
    finally:
        client.close()


def _check_sets(add: Add, client: FinanceOperationsClient) -> None:
    try:
        found = client.entity_sets()
    except DynamicsError as exc:
        add("Dynamics: entity sets", "fail", str(exc), "check dynamics.fo_url")
        return
    missing = [name for name in ENTITY_SETS if name not in found]
    if missing:
        add(
            "Dynamics: entity sets",
            "fail",
            f"$metadata lacks {', '.join(missing)}",
            "these data entities must be public in this F&O version (or the URL is wrong)",
        )
    else:
        add("Dynamics: entity sets", "ok", ", ".join(ENTITY_SETS))


def _check_references(add: Add, client: FinanceOperationsClient, settings: Settings) -> None:
    orders, dynamics = settings.orders, settings.dynamics
    wanted: list[tuple[str, str, str, str]] = []
    if orders.customer_mode == "per-email":
        wanted.append(
            (
                "dynamics.customer_group",
                "CustomerGroups",
                "CustomerGroupId",
                dynamics.customer_group,
            )
        )
    else:
        wanted.append(
            ("orders.customer_number", "CustomersV3", "CustomerAccount", orders.customer_number)
        )
    for key in ("shipping_account", "fee_account"):
        wanted.append((f"orders.{key}", ITEMS_SET, "ItemNumber", getattr(orders, key)))
    for key, entity_set, field_name, value in wanted:
        value = value.strip()
        if not value:
            continue
        try:
            rows = list(
                client.get_all(
                    entity_set,
                    filter=f"{field_name} eq {odata_string(value)}",
                    select=field_name,
                )
            )
        except DynamicsError as exc:
            add(f"Dynamics: {key}", "fail", str(exc), "see the message")
            continue
        if any(str(row.get(field_name, "")).casefold() == value.casefold() for row in rows):
            add(f"Dynamics: {key}", "ok", f"{value} exists in {dynamics.legal_entity}")
        else:
            add(
                f"Dynamics: {key}",
                "fail",
                f"{value} does not exist in {dynamics.legal_entity} ({entity_set})",
                f"create it in F&O, or correct {key}",
            )
