"""Products and variations of the shop emulator: the stock fields as WooCommerce 9.9 serves them.

What ``docs/systems.md`` (W5) says about product stock, as WooCommerce 9.9 does it:

* ``GET /products`` (``sku`` = an exact comma-separated list that also finds variations,
  ``modified_after``/``modified_before`` with ``dates_are_gmt``, ``include``, ``type``,
  ``orderby``/``order``, ``page``/``per_page`` ≤ 100, ``_fields``; ``X-WP-Total``,
  ``X-WP-TotalPages``), ``GET/PUT /products/{id}``, ``GET /products/{id}/variations`` and
  ``GET/PUT /products/{id}/variations/{vid}``.
* ``POST /products/batch`` and ``POST /products/{id}/variations/batch``: at most
  ``batch_limit`` items over create + update + delete, else 413
  ``woocommerce_rest_request_entity_too_large``; each item succeeds or fails alone inside a 200
  answer (``{"id", "error": {code, message, data}}``); a variation id in ``/products/batch`` is
  refused with ``woocommerce_rest_invalid_product_id``.
* The write rules of ``prepare_object_for_database()``: stock fields only while the shop's
  "Enable stock management" is on; a quantity is kept only when the object manages stock (else
  ``manage_stock`` is switched off and the quantity cleared); ``stock_status`` is derived on save
  when stock is managed; quantities are whole numbers (``wc_stock_amount``).
* A variation reports ``manage_stock: "parent"`` when it does not manage stock and its parent
  does, and then the parent's quantity; without a SKU of its own it reports its parent's SKU.
* Every save bumps ``date_modified``; saving a variation bumps its parent's too.

Admin calls for tests: :meth:`Catalogue.add_product`, :meth:`Catalogue.add_variation`,
:meth:`Catalogue.sell` (a sale lowers stock and saves, as ``wc_update_product_stock`` does),
:meth:`Catalogue.refuse` (a plugin refusing writes to one product), :meth:`Catalogue.delete`.
"""

from __future__ import annotations

import copy
import json
import math
import zlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from woo2d365.sandbox.shop_data import SHIRT_PARENT_SKU, Product
from woo2d365.sandbox.shop_rest import (
    ApiError,
    Invalid,
    Request,
    Response,
    as_list,
    is_integer,
    item_error,
    json_response,
    refuse_invalid_json,
    refuse_unauthorised_batch,
    wp_list,
)

if TYPE_CHECKING:
    from woo2d365.sandbox.shop import ShopEmulator

STOCK_STATUSES = ("instock", "outofstock", "onbackorder")
BACKORDERS = ("no", "notify", "yes")
PRODUCT_TYPES = ("simple", "grouped", "external", "variable")
_ORDERBY = ("date", "id", "include", "title", "slug", "modified", "price", "popularity", "rating")
_VARIATION_PATH = "To manipulate product variations you should use the "
_VARIATION_PATH += "/products/<product_id>/variations/<id> endpoint."

Route = tuple[str, dict[str, Callable[..., Response]]]


class Catalogue:
    """The shop's products (``products``) and variations (``variations``), by id."""

    def __init__(self, shop: ShopEmulator) -> None:
        self.shop = shop
        self.products: dict[int, dict[str, Any]] = {}
        self.variations: dict[int, dict[str, Any]] = {}
        self.stock_management = True  # the shop setting "Enable stock management"
        self.no_stock_amount = 0  # "Out of stock threshold" (woocommerce_notify_no_stock_amount)
        self.refusals: dict[int, tuple[int, str, str]] = {}  # id -> (status, code, message)
        self._next_id = 5000
        self._bounds_cache: dict[str, list[tuple[str, str, bool]]] = {}

    # -- admin -----------------------------------------------------------------------------
    def add_product(
        self,
        sku: str,
        name: str = "",
        *,
        product_id: int | None = None,
        type: str = "simple",
        manage_stock: bool = False,
        stock_quantity: int | None = None,
        backorders: str = "no",
    ) -> dict[str, Any]:
        """Create a product (``type`` simple or variable); returns it as the API shows it."""
        with self.shop._lock:
            pid = self._new_id(product_id)
            product: dict[str, Any] = {
                "id": pid,
                "name": name or sku or f"Product {pid}",
                "type": type,
                "status": "publish",
                "sku": sku,
                "manage_stock": manage_stock,
                "stock_quantity": stock_quantity if manage_stock else None,
                "backorders": backorders,
                "stock_status": "instock",
                "variations": [],
            }
            self._stamp(product, created=True)
            self._derive_status(product, None)
            self.products[pid] = product
            return self.present(pid)

    def add_variation(
        self,
        parent_id: int,
        sku: str = "",
        *,
        variation_id: int | None = None,
        manage_stock: bool = False,
        stock_quantity: int | None = None,
        backorders: str = "no",
    ) -> dict[str, Any]:
        """Create a variation of a variable product (``manage_stock`` False: the parent's)."""
        with self.shop._lock:
            parent = self.products[parent_id]
            if parent["type"] != "variable":
                raise ValueError(f"product {parent_id} is not variable")
            vid = self._new_id(variation_id)
            variation: dict[str, Any] = {
                "id": vid,
                "parent_id": parent_id,
                "sku": sku,
                "manage_stock": manage_stock,
                "stock_quantity": stock_quantity if manage_stock else None,
                "backorders": backorders,
                "stock_status": "instock",
            }
            self._stamp(variation, created=True)
            self._derive_status(variation, parent)
            self.variations[vid] = variation
            parent["variations"].append(vid)
            self._stamp(parent)
            return self.present(vid)

    def present(self, object_id: int) -> dict[str, Any]:
        """A product or variation as ``GET`` shows it."""
        with self.shop._lock:
            if object_id in self.variations:
                return self._present_variation(self.variations[object_id])
            return self._present_product(self.products[object_id])

    def sell(self, object_id: int, quantity: int) -> dict[str, Any]:
        """An order lowers the stock of what manages it (``wc_update_product_stock``) and saves."""
        with self.shop._lock:
            target = self._stock_owner(object_id)
            if target.get("manage_stock") is True:
                target["stock_quantity"] = int(target.get("stock_quantity") or 0) - quantity
                self._saved(target)
            return self.present(object_id)

    def refuse(self, object_id: int, message: str = "Refused by a plugin.") -> None:
        """Every write to this product or variation fails (a plugin's validation hook)."""
        self.refusals[object_id] = (400, "woocommerce_rest_product_not_saved", message)

    def delete(self, object_id: int) -> None:
        """Delete a product (with its variations) or a variation permanently."""
        with self.shop._lock:
            if object_id in self.variations:
                variation = self.variations.pop(object_id)
                parent = self.products.get(variation["parent_id"])
                if parent is not None:
                    parent["variations"].remove(object_id)
                    self._stamp(parent)
                return
            product = self.products.pop(object_id)
            for vid in product["variations"]:
                self.variations.pop(vid, None)

    def saves(self) -> int:
        """Product and variation saves answered so far (what ``product.updated`` would fire)."""
        return sum(o.get("_saves", 0) for o in [*self.products.values(), *self.variations.values()])

    # -- routes ----------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        """The product routes, for the emulator's routing table."""
        update = {"POST": self._update, "PUT": self._update, "PATCH": self._update}
        batch = {"POST": self._batch, "PUT": self._batch, "PATCH": self._batch}
        vupdate = {"POST": self._update_v, "PUT": self._update_v, "PATCH": self._update_v}
        vbatch = {"POST": self._batch_v, "PUT": self._batch_v, "PATCH": self._batch_v}
        return [
            (r"/wc/v3/products", {"GET": self._list}),
            (r"/wc/v3/products/batch", batch),
            (r"/wc/v3/products/(\d+)", {"GET": self._get, **update}),
            (r"/wc/v3/products/(\d+)/variations", {"GET": self._list_v}),
            (r"/wc/v3/products/(\d+)/variations/batch", vbatch),
            (r"/wc/v3/products/(\d+)/variations/(\d+)", {"GET": self._get_v, **vupdate}),
        ]

    # -- internals -------------------------------------------------------------------------
    def _new_id(self, wanted: int | None) -> int:
        if wanted is not None:
            if wanted in self.products or wanted in self.variations:
                raise ValueError(f"id {wanted} is taken")
            self._next_id = max(self._next_id, wanted + 1)
            return wanted
        self._next_id += 1
        return self._next_id - 1

    def _stamp(self, obj: dict[str, Any], *, created: bool = False) -> None:
        local, gmt = self.shop._stamps(self.shop.now())
        if created:
            obj["date_created"], obj["date_created_gmt"] = local, gmt
        obj["date_modified"], obj["date_modified_gmt"] = local, gmt

    def _saved(self, obj: dict[str, Any]) -> None:
        """``save()``: derived stock status, ``date_modified`` (and the parent's) bumped."""
        parent = self.products.get(obj["parent_id"]) if "parent_id" in obj else None
        self._derive_status(obj, parent)
        self._stamp(obj)
        obj["_saves"] = obj.get("_saves", 0) + 1
        if parent is not None:
            self._stamp(parent)
        for vid in obj.get("variations") or []:  # a parent's stock is what "parent" ones show
            self._derive_status(self.variations[vid], obj)

    def _derive_status(self, obj: dict[str, Any], parent: dict[str, Any] | None) -> None:
        owner = obj if obj.get("manage_stock") is True else None
        if owner is None and parent is not None and parent.get("manage_stock") is True:
            owner = parent
        if owner is None:
            return
        quantity = int(owner.get("stock_quantity") or 0)
        if quantity > self.no_stock_amount:
            obj["stock_status"] = "instock"
        elif owner.get("backorders") in ("notify", "yes"):
            obj["stock_status"] = "onbackorder"
        else:
            obj["stock_status"] = "outofstock"

    def _stock_owner(self, object_id: int) -> dict[str, Any]:
        if object_id in self.variations:
            variation = self.variations[object_id]
            parent = self.products[variation["parent_id"]]
            if variation["manage_stock"] is not True and parent["manage_stock"] is True:
                return parent
            return variation
        return self.products[object_id]

    def _links(self, path: str, collection: str) -> dict[str, Any]:
        base = f"{self.shop.url}/wp-json/wc/v3"
        return {
            "self": [{"href": f"{base}{path}"}],
            "collection": [{"href": f"{base}{collection}"}],
        }

    def _present_product(self, product: dict[str, Any]) -> dict[str, Any]:
        out = {k: copy.deepcopy(v) for k, v in product.items() if not k.startswith("_")}
        out["parent_id"] = 0
        out["_links"] = self._links(f"/products/{product['id']}", "/products")
        return out

    def _present_variation(self, variation: dict[str, Any]) -> dict[str, Any]:
        out = {k: copy.deepcopy(v) for k, v in variation.items() if not k.startswith("_")}
        parent = self.products[variation["parent_id"]]
        if not variation["sku"]:
            out["sku"] = parent["sku"]  # WC_Product_Variation::get_sku() in view context
        if variation["manage_stock"] is not True:
            if parent["manage_stock"] is True:
                out["manage_stock"] = "parent"
                out["stock_quantity"] = parent["stock_quantity"]
            else:
                out["manage_stock"] = False
                out["stock_quantity"] = None
        path = f"/products/{parent['id']}/variations/{variation['id']}"
        out["_links"] = self._links(path, f"/products/{parent['id']}/variations")
        out["_links"]["up"] = [{"href": f"{self.shop.url}/wp-json/wc/v3/products/{parent['id']}"}]
        return out

    def _require_auth(self, authenticated: bool, verb: str) -> None:
        if not authenticated:
            raise ApiError(
                401, f"woocommerce_rest_cannot_{verb}", "Sorry, you cannot list resources."
            )

    # -- reading ---------------------------------------------------------------------------
    def _list(self, req: Request, authenticated: bool) -> Response:
        invalid = Invalid()
        page, per_page, offset, fields, order_key, descending, windows = self._list_options(
            req, invalid
        )
        include = invalid.int_list(req, "include")
        kind = invalid.enum(req, "type", "", PRODUCT_TYPES) if req.has("type") else None
        sku_param = req.param("sku")
        invalid.raise_if_any()
        self._require_auth(authenticated, "view")
        with self.shop._lock:
            pool: list[dict[str, Any]] = list(self.products.values())
            if sku_param is not None:
                wanted = {s.strip() for s in str(sku_param).split(",")} | {str(sku_param)}
                # With sku, WooCommerce queries products and variations by their stored _sku.
                pool = [o for o in [*pool, *self.variations.values()] if o["sku"] in wanted]
            if include:
                pool = [o for o in pool if o["id"] in include]
            if kind:
                pool = [o for o in pool if o.get("type") == kind]
            pool = [o for o in pool if self._in_windows(o, windows)]
            return self._page(pool, page, per_page, offset, fields, order_key, descending)

    def _list_v(self, req: Request, authenticated: bool, parent_id: int) -> Response:
        invalid = Invalid()
        page, per_page, offset, fields, order_key, descending, windows = self._list_options(
            req, invalid
        )
        include = invalid.int_list(req, "include")
        sku_param = req.param("sku")
        invalid.raise_if_any()
        self._require_auth(authenticated, "view")
        with self.shop._lock:
            parent = self.products.get(parent_id)
            pool = [self.variations[v] for v in parent["variations"]] if parent else []
            if sku_param is not None:
                wanted = {s.strip() for s in str(sku_param).split(",")} | {str(sku_param)}
                pool = [o for o in pool if o["sku"] in wanted]
            if include:
                pool = [o for o in pool if o["id"] in include]
            pool = [o for o in pool if self._in_windows(o, windows)]
            return self._page(pool, page, per_page, offset, fields, order_key, descending)

    def _list_options(self, req: Request, invalid: Invalid) -> tuple[Any, ...]:
        invalid.enum(req, "context", "view", ("view", "edit"))
        page = invalid.integer(req, "page", 1, minimum=1) or 1
        per_page = invalid.integer(req, "per_page", 10, minimum=1, maximum=100) or 10
        offset = invalid.integer(req, "offset", None)
        fields_value = req.param("_fields")
        fields = wp_list(fields_value) if fields_value is not None else None
        orderby = invalid.enum(req, "orderby", "date", _ORDERBY)
        descending = invalid.enum(req, "order", "desc", ("asc", "desc")) == "desc"
        gmt = invalid.boolean(req, "dates_are_gmt", False)
        windows = [
            ("date_modified", invalid.date(req, "modified_after"), True, gmt),
            ("date_modified", invalid.date(req, "modified_before"), False, gmt),
            ("date_created", invalid.date(req, "after"), True, gmt),
            ("date_created", invalid.date(req, "before"), False, gmt),
        ]
        column = {"modified": "date_modified_gmt", "id": "id", "title": "name", "slug": "name"}
        return (
            page,
            per_page,
            offset,
            fields,
            column.get(orderby, "date_created_gmt"),
            descending,
            windows,
        )

    def _in_windows(self, obj: dict[str, Any], windows: list[Any]) -> bool:
        """The rule of ``ShopEmulator._date_ok``, with each bound formatted once per request."""
        for column, bound, is_after in self._bounds(windows):
            stored = str(obj.get(column) or "")[:19]
            if not stored or not (stored > bound if is_after else stored < bound):
                return False
        return True

    def _bounds(self, windows: list[Any]) -> list[tuple[str, str, bool]]:
        key = repr(windows)
        cached = self._bounds_cache.get(key)
        if cached is None:
            cached = []
            for column, value, is_after, gmt in windows:
                if value is None:
                    continue
                moment, has_offset = value
                if has_offset:
                    moment = moment.astimezone(self.shop.tz).replace(tzinfo=None)
                name = column + "_gmt" if gmt else column
                cached.append((name, moment.strftime("%Y-%m-%dT%H:%M:%S"), is_after))
            self._bounds_cache = {key: cached}
        return cached

    def _page(
        self,
        pool: list[dict[str, Any]],
        page: int,
        per_page: int,
        offset: int | None,
        fields: list[str] | None,
        order_key: str,
        descending: bool,
    ) -> Response:
        pool.sort(key=lambda o: (str(o.get(order_key, "")).zfill(20), o["id"]), reverse=descending)
        total = len(pool)
        pages = math.ceil(total / per_page)
        start = offset if offset is not None else (page - 1) * per_page
        body = []
        for obj in pool[start : start + per_page]:
            shown = self.present(obj["id"])
            if fields is not None:
                shown = {name: value for name, value in shown.items() if name in fields}
            body.append(shown)
        headers = [("X-WP-Total", str(total)), ("X-WP-TotalPages", str(pages))]
        return json_response(200, body, headers)

    def _get(self, req: Request, authenticated: bool, product_id: int) -> Response:
        self._require_auth(authenticated, "view")
        with self.shop._lock:
            if product_id in self.variations:
                raise ApiError(404, "woocommerce_rest_invalid_product_id", _VARIATION_PATH)
            if product_id not in self.products:
                raise ApiError(404, "woocommerce_rest_product_invalid_id", "Invalid ID.")
            return json_response(200, self.present(product_id))

    def _get_v(self, req: Request, authenticated: bool, parent_id: int, vid: int) -> Response:
        self._require_auth(authenticated, "view")
        with self.shop._lock:
            variation = self.variations.get(vid)
            if variation is None or variation["parent_id"] != parent_id:
                raise ApiError(404, "woocommerce_rest_product_variation_invalid_id", "Invalid ID.")
            return json_response(200, self.present(vid))

    # -- writing ---------------------------------------------------------------------------
    def _update(self, req: Request, authenticated: bool, product_id: int) -> Response:
        refuse_invalid_json(req)
        return json_response(200, self._write(req.param, authenticated, product_id, None))

    def _update_v(self, req: Request, authenticated: bool, parent_id: int, vid: int) -> Response:
        refuse_invalid_json(req)
        return json_response(200, self._write(req.param, authenticated, vid, parent_id))

    def _write(
        self,
        param: Callable[[str], Any],
        authenticated: bool,
        object_id: int,
        parent_id: int | None,
    ) -> dict[str, Any]:
        """One ``PUT`` of a product (``parent_id`` None) or of a variation of ``parent_id``."""
        invalid = Invalid()
        values = _StockValues(param, invalid)
        invalid.raise_if_any()
        if not authenticated:
            raise ApiError(
                401,
                "woocommerce_rest_cannot_edit",
                "Sorry, you are not allowed to edit this resource.",
            )
        with self.shop._lock:
            if parent_id is None:
                if object_id in self.variations:
                    raise ApiError(404, "woocommerce_rest_invalid_product_id", _VARIATION_PATH)
                obj = self.products.get(object_id)
                if obj is None:
                    raise ApiError(400, "woocommerce_rest_product_invalid_id", "Invalid ID.")
            else:
                obj = self.variations.get(object_id)
                if obj is None or obj["parent_id"] != parent_id:
                    raise ApiError(
                        400, "woocommerce_rest_product_variation_invalid_id", "Invalid ID."
                    )
            if object_id in self.refusals:
                status, code, message = self.refusals[object_id]
                raise ApiError(status, code, message)
            self._apply(obj, values, is_variation=parent_id is not None)
            self._saved(obj)
            return self.present(object_id)

    def _apply(self, obj: dict[str, Any], values: _StockValues, *, is_variation: bool) -> None:
        """The stock part of ``prepare_object_for_database()``."""
        if values.stock_status is not None:
            obj["stock_status"] = values.stock_status
        if not self.stock_management:
            return
        if values.manage_stock is not None:
            obj["manage_stock"] = values.manage_stock
        if values.backorders is not None:
            obj["backorders"] = values.backorders
        managed = obj["manage_stock"] is True
        if is_variation and not managed:
            parent = self.products[obj["parent_id"]]
            managed_by_parent = parent["manage_stock"] is True
            if not managed_by_parent:
                obj["backorders"] = "no"
                obj["stock_quantity"] = None
            elif values.stock_quantity is not None:
                obj["_own_quantity"] = values.stock_quantity  # kept, not shown ("parent")
            return
        if managed:
            if values.stock_quantity is not None:
                obj["stock_quantity"] = values.stock_quantity
        else:
            obj["manage_stock"] = False
            obj["stock_quantity"] = None

    def _batch(self, req: Request, authenticated: bool) -> Response:
        return self._run_batch(req, authenticated, None)

    def _batch_v(self, req: Request, authenticated: bool, parent_id: int) -> Response:
        return self._run_batch(req, authenticated, parent_id)

    def _run_batch(self, req: Request, authenticated: bool, parent_id: int | None) -> Response:
        """``WC_REST_Controller::batch_items``: per-item outcomes inside a 200 answer."""
        refuse_unauthorised_batch(req, authenticated)
        lists = {name: as_list(req.param(name)) for name in ("create", "update", "delete")}
        total = sum(len(items) for items in lists.values())
        if total > self.shop.batch_limit:
            raise ApiError(
                413,
                "woocommerce_rest_request_entity_too_large",
                f"Unable to accept more than {self.shop.batch_limit} items for this request.",
            )
        answer: dict[str, list[Any]] = {}
        for _item in lists["create"]:
            error = ApiError(501, "sandbox_not_implemented", "The shop emulator does not create.")
            answer.setdefault("create", []).append({"id": 0, "error": item_error(error)})
        for item in lists["update"]:
            fields = item if isinstance(item, dict) else {}
            raw_id = fields.get("id")
            number = int(str(raw_id).strip()) if is_integer(raw_id) else 0
            try:
                done = self._write(fields.get, authenticated, number, parent_id)
            except ApiError as refused:
                answer.setdefault("update", []).append({"id": raw_id, "error": item_error(refused)})
                continue
            answer.setdefault("update", []).append(json.loads(json.dumps(done)))
        for object_id in lists["delete"]:
            error = ApiError(501, "sandbox_not_implemented", "The emulator does not delete.")
            answer.setdefault("delete", []).append({"id": object_id, "error": item_error(error)})
        return json_response(200, answer)


class _StockValues:
    """The stock fields of one write, validated as the REST schema does."""

    def __init__(self, param: Callable[[str], Any], invalid: Invalid) -> None:
        self.manage_stock: bool | None = None
        self.stock_quantity: int | None = None
        self.backorders: str | None = None
        self.stock_status: str | None = None
        manage = param("manage_stock")
        if manage is not None:
            if manage == "parent":
                self.manage_stock = False
            elif isinstance(manage, bool):
                self.manage_stock = manage
            elif str(manage).lower() in ("true", "false", "1", "0"):
                self.manage_stock = str(manage).lower() in ("true", "1")
            else:
                invalid.add(
                    "manage_stock", "rest_invalid_type", "manage_stock is not of type boolean."
                )
        quantity = param("stock_quantity")
        if quantity is not None:
            if is_integer(quantity):
                self.stock_quantity = int(str(quantity).strip().split(".")[0])
            else:
                invalid.add(
                    "stock_quantity", "rest_invalid_type", "stock_quantity is not of type integer."
                )
        for name, allowed in (("backorders", BACKORDERS), ("stock_status", STOCK_STATUSES)):
            value = param(name)
            if value is None:
                continue
            if value not in allowed:
                invalid.add(name, "rest_not_in_enum", f"{name} is not one of {', '.join(allowed)}.")
            else:
                setattr(self, name, value)


def seed_catalogue(catalogue: Catalogue, products: Iterable[Product]) -> None:
    """The shop's products behind the order fixtures' lines: simple products, and a variable
    product whose variations carry their own SKU or none (then they report the parent's,
    :data:`SHIRT_PARENT_SKU`). Nothing manages stock yet, as in a shop before the stock sync."""
    for product in products:
        if product.is_deleted:
            continue
        if not product.variation_id:
            if product.product_id not in catalogue.products:
                catalogue.add_product(
                    product.sku or "", product.name, product_id=product.product_id
                )
            continue
        if product.product_id not in catalogue.products:
            catalogue.add_product(
                SHIRT_PARENT_SKU,
                product.parent_name or product.name,
                product_id=product.product_id,
                type="variable",
            )
        if product.variation_id not in catalogue.variations:
            own = "" if product.sku == SHIRT_PARENT_SKU else product.sku or ""
            catalogue.add_variation(product.product_id, own, variation_id=product.variation_id)


def sandbox_inventory(items: Iterable[dict[str, Any]]) -> dict[str, int]:
    """A fixed inventory per Dynamics item number (5 to 44 units), the same on every start."""
    return {str(i["number"]): 5 + zlib.crc32(str(i["number"]).encode()) % 40 for i in items}
