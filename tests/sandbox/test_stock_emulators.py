"""Product stock in the shop emulator and item inventory in the Business Central one, over HTTPS
with plain ``requests`` (docs/systems.md W5 and B4)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from tests.sandbox.test_bc_emulator import Api
from woo2d365.sandbox.businesscentral import BusinessCentralEmulator
from woo2d365.sandbox.shop import ShopEmulator
from woo2d365.sandbox.tls import SandboxCA

API = "/wp-json/wc/v3"
T0 = datetime(2026, 11, 22, 6, 0, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def ca() -> Iterator[SandboxCA]:
    authority = SandboxCA()
    yield authority
    authority.cleanup()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def shop(ca: SandboxCA, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> Iterator[ShopEmulator]:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.ca_path))
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with ShopEmulator(ca=ca, clock=clock) as emulator:
        catalogue = emulator.catalogue
        catalogue.add_product("MUG", "Mug", product_id=10)
        catalogue.add_product("TEE", "T-shirt", product_id=11, type="variable")
        catalogue.add_variation(11, "TEE-S", variation_id=12)
        catalogue.add_variation(11, "", variation_id=13)  # no SKU of its own
        yield emulator


def session(shop: ShopEmulator) -> requests.Session:
    http = requests.Session()
    http.auth = (shop.consumer_key, shop.consumer_secret)
    return http


def get(shop: ShopEmulator, path: str, **params: Any) -> requests.Response:
    return session(shop).get(shop.url + API + path, params=params, timeout=5)


def post(shop: ShopEmulator, path: str, body: Any) -> requests.Response:
    return session(shop).post(shop.url + API + path, json=body, timeout=5)


def test_sku_search_is_exact_and_finds_variations_with_their_parent(shop: ShopEmulator) -> None:
    found = get(shop, "/products", sku="TEE-S,MUG").json()
    assert sorted((p["id"], p["parent_id"]) for p in found) == [(10, 0), (12, 11)]
    assert get(shop, "/products", sku="TEE-").json() == [], "exact, not partial"
    # A variation without a SKU of its own shows its parent's, but is not found by it.
    assert get(shop, "/products/11/variations/13").json()["sku"] == "TEE"
    assert [p["id"] for p in get(shop, "/products", sku="TEE").json()] == [11]


def test_a_quantity_is_kept_only_with_manage_stock_and_the_status_is_derived(
    shop: ShopEmulator,
) -> None:
    alone = post(shop, "/products/10", {"stock_quantity": 5}).json()
    assert (alone["manage_stock"], alone["stock_quantity"]) == (False, None)
    zero = post(shop, "/products/10", {"manage_stock": True, "stock_quantity": 0}).json()
    assert (zero["manage_stock"], zero["stock_quantity"], zero["stock_status"]) == (
        True,
        0,
        "outofstock",
    )
    back = post(shop, "/products/10", {"backorders": "notify", "stock_quantity": 0}).json()
    assert back["stock_status"] == "onbackorder"
    bad = post(shop, "/products/10", {"manage_stock": True, "stock_quantity": 2.5})
    assert bad.status_code == 400 and bad.json()["code"] == "rest_invalid_param"


def test_a_variation_shows_its_parents_stock_until_it_manages_its_own(shop: ShopEmulator) -> None:
    post(shop, "/products/11", {"manage_stock": True, "stock_quantity": 8})
    variation = get(shop, "/products/11/variations/12").json()
    assert (variation["manage_stock"], variation["stock_quantity"]) == ("parent", 8)
    own = post(shop, "/products/11/variations/12", {"manage_stock": True, "stock_quantity": 3})
    assert (own.json()["manage_stock"], own.json()["stock_quantity"]) == (True, 3)
    assert get(shop, "/products/11").json()["stock_quantity"] == 8


def test_batches_answer_each_item_and_refuse_more_than_the_limit(shop: ShopEmulator) -> None:
    answer = post(
        shop,
        "/products/batch",
        {"update": [{"id": 10, "manage_stock": True, "stock_quantity": 4}, {"id": 12}, {"id": 99}]},
    )
    assert answer.status_code == 200
    items = {item["id"]: item for item in answer.json()["update"]}
    assert items[10]["stock_quantity"] == 4
    assert items[12]["error"]["code"] == "woocommerce_rest_invalid_product_id"
    assert items[12]["error"]["data"] == {"status": 404}
    assert items[99]["error"]["code"] == "woocommerce_rest_product_invalid_id"
    variations = post(shop, "/products/11/variations/batch", {"update": [{"id": 10}]})
    assert variations.json()["update"][0]["error"]["code"] == (
        "woocommerce_rest_product_variation_invalid_id"
    )
    too_many = post(shop, "/products/batch", {"update": [{"id": 10}] * 101})
    assert too_many.status_code == 413
    assert too_many.json() == {
        "code": "woocommerce_rest_request_entity_too_large",
        "message": "Unable to accept more than 100 items for this request.",
        "data": {"status": 413},
    }


def test_every_save_moves_date_modified_and_a_variation_moves_its_parent(
    shop: ShopEmulator, clock: Clock
) -> None:
    clock.now = T0 + timedelta(hours=1)
    post(shop, "/products/11/variations/batch", {"update": [{"id": 12, "stock_quantity": 1}]})
    later = "2026-11-22T07:00:00"
    assert get(shop, "/products/11").json()["date_modified_gmt"] == later
    changed = get(shop, "/products", modified_after="2026-11-22T06:30:00", dates_are_gmt="true")
    assert [p["id"] for p in changed.json()] == [11]
    assert changed.headers["X-WP-Total"] == "1"
    # A write that changes nothing is a save all the same.
    clock.now = T0 + timedelta(hours=2)
    same = post(shop, "/products/10", {"manage_stock": False}).json()
    assert same["date_modified_gmt"] == "2026-11-22T08:00:00"


def test_items_inventory_is_read_only_and_does_not_move_last_modified(
    ca: SandboxCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.ca_path))
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with BusinessCentralEmulator(ca=ca) as bc:
        bc.add_item("1000", "Bicycle")
        bc.add_item("SVC", "Installation")
        bc.set_item("SVC", type="Service")
        stamp = next(i for i in bc.items() if i["number"] == "1000")["lastModifiedDateTime"]
        assert bc.set_inventory("1000", 12) == 12
        assert bc.adjust_inventory("1000", -2) == 10
        api = Api(bc)
        answer = api.get(
            f"{api.company}/items",
            params={"$select": "number,inventory", "$filter": "type eq 'Inventory'"},
        )
        assert answer.status_code == 200, answer.text
        assert [(i["number"], i["inventory"]) for i in answer.json()["value"]] == [("1000", 10)]
        assert next(i for i in bc.items() if i["number"] == "1000")["lastModifiedDateTime"] == stamp
