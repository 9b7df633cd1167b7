"""Both emulators, seeded consistently, and a config that points woo2d365 at them.

Used by ``woo2d365 demo`` and by the end-to-end tests: a WooCommerce shop with realistic orders
and a Business Central company whose items carry the shop's SKUs as item numbers, except a few
products whose Dynamics items have other numbers (their orders are held until ``map-sku add``).
Everything runs on 127.0.0.1 over real HTTPS with a throwaway CA.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from woo2d365.sandbox.businesscentral import TRACKING_API, BusinessCentralEmulator
from woo2d365.sandbox.financeoperations import FinanceOperationsEmulator
from woo2d365.sandbox.shop import ShopEmulator
from woo2d365.sandbox.shop_data import CATALOGUE, Product, build_order, realistic_orders
from woo2d365.sandbox.shop_products import sandbox_inventory, seed_catalogue
from woo2d365.sandbox.tls import SandboxCA

SHIPPING_ACCOUNT = "8400"
FEE_ACCOUNT = "8410"
ROUNDING_ACCOUNT = "8490"
REFUND_ACCOUNT = "8420"  # [refunds] account: refunded shipping, fees and amounts
#: The shop's VAT rates and the emulator's VAT product posting groups (``taxCode``) for them.
TAX_CODES = {"21": "VAT21", "9": "VAT9", "0": "VAT0"}
COMPANY = "CRONUS NL"
BUSINESS_CENTRAL = "business-central"
FINANCE_OPERATIONS = "finance-operations"
ERPS = (BUSINESS_CENTRAL, FINANCE_OPERATIONS)
#: F&O: the service items shipping and fees are booked on, the legal entity, the customer group.
FO_SHIPPING_ITEM = "FREIGHT"
FO_FEE_ITEM = "WEBFEE"
FO_LEGAL_ENTITY = "wcnl"
FO_CUSTOMER_GROUP = "WEB"


@dataclass(frozen=True)
class UnmappedProduct:
    """A shop product whose Dynamics item has another number: needs ``map-sku add``."""

    product: Product
    item_number: str


#: Shop SKUs that are not Dynamics item numbers, and the items they stand for.
UNMAPPED = (
    UnmappedProduct(
        Product("MUG-DELFTS-BLAUW", "Mok Delfts Blauw", Decimal("12.95"), Decimal("21"), 60),
        "1996-S",
    ),
    UnmappedProduct(
        Product("KLOMPEN-MT42", "Klompen maat 42", Decimal("24.50"), Decimal("21"), 61), "1920-S"
    ),
    UnmappedProduct(
        Product("TULP-BOLLEN-50", "Tulpenbollen 50 st.", Decimal("9.99"), Decimal("9"), 62),
        "1906-S",
    ),
)


class Sandbox:
    """A running shop emulator and Dynamics emulator with matching data.

    ``erp`` picks Business Central (default) or Finance & Operations. With F&O, :attr:`fo` is its
    emulator and :attr:`bc` the same object (the F&O emulator is built on the Business Central
    one's server and identity provider): use :attr:`fo` for its data.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        orders: int = 50,
        seed: int = 7,
        unmapped_orders: int = 3,
        latency: float = 0.0,
        start_gmt: datetime | None = None,
        pushable_only: bool = False,
        erp: str = BUSINESS_CENTRAL,
    ) -> None:
        if erp not in ERPS:
            raise ValueError(f"erp must be one of {', '.join(ERPS)}")
        self.erp = erp
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.order_count = orders
        self.seed = seed
        self.unmapped_orders = min(unmapped_orders, len(UNMAPPED))
        self.latency = latency
        self.pushable_only = pushable_only
        self.start_gmt = start_gmt or (datetime.now(UTC) - timedelta(days=3)).replace(microsecond=0)
        self.ca = SandboxCA(self.directory)
        self.shop = ShopEmulator(https=True, ca=self.ca)
        self.fo: FinanceOperationsEmulator | None = None
        if erp == FINANCE_OPERATIONS:
            self.fo = FinanceOperationsEmulator(
                ca=self.ca,
                client_secret=secrets.token_urlsafe(24),
                legal_entities=((FO_LEGAL_ENTITY, "Woo2D365 Sandbox NL"),),
            )
            self.bc: BusinessCentralEmulator = self.fo
        else:
            self.bc = BusinessCentralEmulator(
                ca=self.ca, client_secret=secrets.token_urlsafe(24), companies=(COMPANY,)
            )
        self.shop.latency = latency
        self.bc.latency = latency
        self.config_path = self.directory / "woo2d365.toml"
        self.state_path = self.directory / "woo2d365.db"

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Sandbox:
        """Start both servers, seed them, write the config."""
        self.shop.start()
        self.bc.start()
        self._seed_dynamics()
        self._seed_shop()
        self.config_path.write_text(self.config_text(), encoding="utf-8")
        self.config_path.chmod(0o600)
        return self

    def stop(self) -> None:
        """Stop both servers (the directory and its files stay)."""
        self.shop.stop()
        self.bc.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- seed ------------------------------------------------------------------------------
    def _seed_dynamics(self) -> None:
        if self.fo is not None:
            self._seed_finance_operations(self.fo)
            return
        seen: set[str] = set()
        for product in CATALOGUE:
            if product.sku and product.sku not in seen:
                seen.add(product.sku)
                self.bc.add_item(
                    product.sku,
                    product.name,
                    unit_price=product.price,
                    vat_percent=product.tax_rate,
                )
        for unmapped in UNMAPPED:
            self.bc.add_item(
                unmapped.item_number,
                unmapped.product.name,
                unit_price=unmapped.product.price,
                vat_percent=unmapped.product.tax_rate,
            )
        for number, quantity in sandbox_inventory(self.bc.items()).items():
            self.bc.set_inventory(number, quantity)
        self.bc.add_account(SHIPPING_ACCOUNT, "Verzendkosten", vat_percent=Decimal("21"))
        self.bc.add_account(FEE_ACCOUNT, "Overige opbrengsten", vat_percent=Decimal("21"))
        self.bc.add_account(ROUNDING_ACCOUNT, "Afrondingsverschillen", vat_percent=Decimal("0"))
        self.bc.add_account(REFUND_ACCOUNT, "Terugbetalingen", vat_percent=Decimal("21"))

    def _seed_finance_operations(self, fo: FinanceOperationsEmulator) -> None:
        seen: set[str] = set()
        for product in CATALOGUE:
            if product.sku and product.sku not in seen:
                seen.add(product.sku)
                fo.add_product(product.sku, product.name, price=product.price)
        for unmapped in UNMAPPED:
            fo.add_product(
                unmapped.item_number, unmapped.product.name, price=unmapped.product.price
            )
        fo.add_product(FO_SHIPPING_ITEM, "Freight", service=True)
        fo.add_product(FO_FEE_ITEM, "Web shop fees", service=True)

    def documents(self) -> list[tuple[str, Decimal]]:
        """``(external document number, total incl. tax)`` of every sales order in Dynamics.

        F&O calculates no totals when an order is created: its total is the lines'
        ``LineAmount`` sum, plus the shop order's tax when the prices exclude tax.
        """
        if self.fo is None:
            return [
                (d["externalDocumentNumber"], Decimal(str(d["totalAmountIncludingTax"])))
                for d in self.bc.sales_orders()
            ]
        taxes = {str(o["number"]): Decimal(str(o["total_tax"])) for o in self.shop.orders.values()}
        prefix = "WC-"
        found = []
        for header in self.fo.sales_orders():
            reference = str(header["CustomersOrderReference"])
            total = Decimal(header["total"])
            if header["ArePricesIncludingSalesTax"] != "Yes":
                total += taxes.get(reference.removeprefix(prefix), Decimal(0))
            found.append((reference, total))
        return found

    @property
    def create_path(self) -> str:
        """What the URL of an order's create contains (for fault injection in tests)."""
        return "$batch" if self.fo is not None else "salesOrders"

    def _seed_shop(self) -> None:
        count = self.order_count - self.unmapped_orders
        if self.pushable_only:
            # The demo shows orders a SKU mapping can release; lines of deleted products and
            # orders without an e-mail address need a person in the shop, not a mapping.
            pool = realistic_orders(
                count + 20, seed=self.seed, start_gmt=self.start_gmt, site_url=self.shop.url
            )
            orders = [o for o in pool if _resolvable(o)][:count]
        else:
            orders = realistic_orders(
                count, seed=self.seed, start_gmt=self.start_gmt, site_url=self.shop.url
            )
        next_id = 1000 + count + 200
        created = self.start_gmt + timedelta(days=2)
        for index, unmapped in enumerate(UNMAPPED[: self.unmapped_orders]):
            orders.append(
                build_order(
                    next_id + index,
                    items=[(unmapped.product, 1 + index), (CATALOGUE[0], 1)],
                    shipping=Decimal("4.09"),
                    created_gmt=created + timedelta(minutes=7 * index),
                    site_url=self.shop.url,
                )
            )
        self.shop.add_orders(orders)
        # -- products and their stock (woo2d365 stock) --
        seed_catalogue(self.shop.catalogue, [*CATALOGUE, *(u.product for u in UNMAPPED)])

    # -- what the tool needs ---------------------------------------------------------------
    def taken_order_ids(self, statuses: tuple[str, ...] = ("processing", "completed")) -> list[int]:
        """Ids of shop orders in the statuses the config takes."""
        return sorted(i for i, o in self.shop.orders.items() if o["status"] in statuses)

    def settings_dict(self) -> dict[str, Any]:
        """The config as a dictionary (what :meth:`config_text` writes)."""
        if self.fo is not None:
            return self._fo_settings(self.fo)
        return {
            "woocommerce": self._shop_settings(),
            "dynamics": {
                "tenant_id": self.bc.tenant_id,
                "client_id": self.bc.client_id,
                "client_secret": self.bc.client_secret,
                "environment": self.bc.environment,
                "company": COMPANY,
                "api_url": self.bc.url,
                "authority_host": self.bc.authority_host,
                "scope": self.bc.scope,
                "timeout_seconds": 10,
            },
            "orders": {
                "shipping_account": SHIPPING_ACCOUNT,
                "fee_account": FEE_ACCOUNT,
                "sku_match": "map-then-direct",
                **_vat_settings(),
            },
            "state": {"url": f"sqlite:///{self.state_path}"},
            "shipments": {
                "enabled": False,
                "tracking_api": TRACKING_API,
                "carriers": {"DHL": "DHL Parcel|https://www.dhl.com/track?tracking-id=%1"},
            },
        }

    def _shop_settings(self) -> dict[str, Any]:
        """The ``[woocommerce]`` table of the config."""
        return {
            "url": self.shop.url,
            "consumer_key": self.shop.consumer_key,
            "consumer_secret": self.shop.consumer_secret,
            "auth": "basic",
            "statuses": ["processing", "completed"],
            "start_date": (self.start_gmt - timedelta(days=1)).isoformat(),
            "timeout_seconds": 10,
        }

    def _fo_settings(self, fo: FinanceOperationsEmulator) -> dict[str, Any]:
        return {
            "woocommerce": self._shop_settings(),
            "dynamics": {
                "product": FINANCE_OPERATIONS,
                "tenant_id": fo.tenant_id,
                "client_id": fo.client_id,
                "client_secret": fo.client_secret,
                "authority_host": fo.authority_host,
                "fo_url": fo.url,
                "legal_entity": FO_LEGAL_ENTITY,
                "customer_group": FO_CUSTOMER_GROUP,
                "timeout_seconds": 10,
            },
            "orders": {
                "shipping_account": FO_SHIPPING_ITEM,
                "fee_account": FO_FEE_ITEM,
                "sku_match": "map-then-direct",
            },
            "state": {"url": f"sqlite:///{self.state_path}"},
        }

    def config_text(self) -> str:
        """A woo2d365.toml for this sandbox."""
        lines = ["# Written by the woo2d365 sandbox: both systems are emulators on 127.0.0.1."]
        for section, values in self.settings_dict().items():
            lines.append(f"\n[{section}]")
            for key, value in values.items():
                lines.append(f"{key} = {toml_value(value)}")
        return "\n".join(lines) + "\n"

    def environment(self) -> dict[str, str]:
        """Environment variables a process needs to trust the sandbox CA."""
        return {"REQUESTS_CA_BUNDLE": str(self.ca.ca_path), "SSL_CERT_FILE": str(self.ca.ca_path)}

    @contextmanager
    def trusted(self) -> Iterator[None]:
        """Trust the sandbox CA in this process for the block (CURL_CA_BUNDLE would override it)."""
        saved = {
            name: os.environ.get(name)
            for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE")
        }
        os.environ.update(self.environment())
        os.environ.pop("CURL_CA_BUNDLE", None)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _resolvable(order: dict[str, Any]) -> bool:
    """True when every line has a SKU and the order has an e-mail address."""
    billing = order.get("billing") or {}
    return bool(billing.get("email")) and all(line.get("sku") for line in order["line_items"])


def _vat_settings() -> dict[str, Any]:
    """The shop's VAT per line and the rounding account."""
    return {"tax_codes": dict(TAX_CODES), "rounding_account": ROUNDING_ACCOUNT}


def toml_value(value: Any) -> str:
    """A Python value as a TOML value (strings, numbers, booleans, lists, inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return (
            "{ "
            + ", ".join(f"{toml_value(str(k))} = {toml_value(v)}" for k, v in value.items())
            + " }"
        )
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
