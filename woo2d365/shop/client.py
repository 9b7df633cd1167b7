"""The WooCommerce REST client: ``/wp-json/wc/v3`` on one :class:`requests.Session`.

Authentication (``docs/systems.md`` W1): WooCommerce reads HTTP Basic and query-string
credentials only over HTTPS, and only OAuth 1.0a one-legged signatures over plain HTTP. The client
refuses ``basic``/``query`` for an ``http://`` URL instead of sending requests that would all be
answered 401.

The program's one retry policy (:mod:`woo2d365.retries`) for every call: 429, 502, 503, 504,
dropped connections and timeouts are tried again, after the server's ``Retry-After`` or an
exponential backoff with full jitter, up to ``max_tries``; a ``Retry-After`` longer than
``max_wait_seconds`` is not waited for. Then :class:`ShopUnreachable`. Every other error is one
readable line. Creating a note is retried only where the shop cannot have received it (429, 503,
no connection). Messages never contain the consumer key or secret, not even inside a URL.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import unescape
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus, urlsplit

import requests
from requests.auth import HTTPBasicAuth

from woo2d365 import __version__
from woo2d365.errors import (
    ConfigError,
    ShopAuthenticationError,
    ShopError,
    ShopUnreachable,
    UsageError,
)
from woo2d365.http import (
    TrustingSession,
    environment_read_once,
    retry_after_seconds,
    server_date,
)
from woo2d365.retries import RetryPolicy, retrying
from woo2d365.settings import WooCommerceSettings, redact_url
from woo2d365.shop.mapping import SALES_ORDER_META_KEY as SALES_ORDER_META_KEY

API_PATH = "/wp-json/wc/v3"
USER_AGENT = f"woo2d365/{__version__} (+https://github.com/woo2d365)"
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
# Answers a proxy or CDN gives before WordPress saw the request: safe to repeat even a create.
_NOT_RECEIVED_STATUSES = frozenset({429, 503})
MAX_PAGE_SIZE = 100
BATCH_LIMIT = 100  # items per POST /orders/batch (woocommerce_rest_batch_items_limit)


def write_back_note(sales_order_number: str) -> str:
    """The private order note written once an order is in Dynamics."""
    return f"Created in Dynamics 365 as sales order {sales_order_number}"


@dataclass(frozen=True)
class OrdersPage:
    """One page of ``GET /orders`` with the paging headers and the server's clock."""

    orders: list[dict[str, Any]]
    page: int
    total_pages: int
    total: int
    server_date: datetime | None


@dataclass(frozen=True)
class ProductsPage:
    """One page of ``GET /products`` and the server's clock."""

    products: list[dict[str, Any]]
    server_date: datetime | None


@dataclass
class StockAnswer:
    """What a stock batch did: the objects the shop saved, and what it refused (id → reason)."""

    written: dict[int, dict[str, Any]] = field(default_factory=dict)
    refused: dict[int, str] = field(default_factory=dict)


PRODUCT_FIELDS = "id,type,sku,manage_stock,stock_quantity,date_modified_gmt,variations"
VARIATION_FIELDS = "id,sku,manage_stock,stock_quantity,date_modified_gmt"


@dataclass(frozen=True)
class ShopInfo:
    """What ``doctor`` learns about the shop and the API key.

    ``can_write`` comes from a harmless write (``PUT /orders/0``, an order that cannot exist):
    WooCommerce checks the key's permission before it looks for the order, so a read-only key gets
    401 and a read/write key gets "Invalid ID". ``hpos`` and ``order_datastore`` come from
    ``GET /system_status`` (``settings.HPOS_enabled``), which needs a key of a shop manager or
    administrator. ``None`` means "could not be discovered"; ``notes`` says why.
    """

    url: str
    auth: str
    orders_total: int | None
    can_write: bool | None
    hpos: bool | None
    order_datastore: str | None
    server_date: datetime | None
    notes: tuple[str, ...] = ()


class _Retry(Exception):  # an internal signal for the backoff decorator; never escapes
    """A failure worth another try; carries the error to raise when the tries are used up."""

    def __init__(
        self, reason: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


P = TypeVar("P")  # a page of a listing
V = TypeVar("V")  # a value sent for one id in a batch


class WooClient:
    """A client for the WooCommerce REST API v3 of one shop."""

    def __init__(
        self,
        settings: WooCommerceSettings,
        *,
        session: requests.Session | None = None,
        max_tries: int = 5,
        max_wait_seconds: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings
        # A pasted key or secret often carries a line break; WooCommerce would refuse it.
        self._key = settings.consumer_key.get_secret_value().strip()
        self._secret = settings.consumer_secret.get_secret_value().strip()
        self.site = _check_url(settings.url)
        if not self._key or not self._secret:
            missing = "consumer_key" if not self._key else "consumer_secret"
            raise ConfigError(f"woocommerce.{missing} is required")
        if urlsplit(self.site).scheme == "http" and settings.auth != "oauth1":
            raise ConfigError(
                f'woocommerce.auth = "{settings.auth}" does not work over plain http: WooCommerce '
                f"ignores Basic and query-string credentials unless the site is served over https. "
                f'Use an https:// woocommerce.url, or auth = "oauth1" for a shop that has only http'
            )
        self.base_url = self.site + API_PATH
        self.retry = retry or RetryPolicy(
            max_tries=max(1, max_tries), max_retry_after_seconds=max_wait_seconds
        )
        self.max_tries = self.retry.max_tries
        self._timeout = settings.timeout_seconds
        self.request_count = 0  # HTTP requests sent, retries included
        self._count_lock = threading.Lock()
        self._batch_sizes: dict[str, int] = {}  # kind → items a batch, once it answered 413
        self._secrets = _secret_forms(self._key, self._secret)
        self._session = session or environment_read_once(TrustingSession(), self.site)
        self._session.headers["User-Agent"] = USER_AGENT
        self._session.headers["Accept"] = "application/json"
        self._query_auth: dict[str, str] = {}
        if settings.auth == "basic":
            self._session.auth = HTTPBasicAuth(self._key, self._secret)
        elif settings.auth == "query":
            self._query_auth = {"consumer_key": self._key, "consumer_secret": self._secret}
        else:
            # Imported here: only a plain-http shop signs with OAuth 1.0a (start-up time).
            from oauthlib.oauth1 import (  # type: ignore[import-untyped]
                SIGNATURE_HMAC_SHA256,
                SIGNATURE_TYPE_QUERY,
            )
            from requests_oauthlib import OAuth1

            self._session.auth = OAuth1(
                self._key,
                client_secret=self._secret,
                signature_method=SIGNATURE_HMAC_SHA256,
                signature_type=SIGNATURE_TYPE_QUERY,
            )
        self._send = retrying(self.retry, retry_on=_Retry, sleep=sleep)(self._send_once)

    # -- public API ------------------------------------------------------------------------

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()

    def __enter__(self) -> WooClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def iter_orders_modified_after(
        self, after: datetime | None, *, page_size: int | None = None
    ) -> Iterator[OrdersPage]:
        """Every order modified after ``after`` (all statuses), page by page, oldest id first.

        Follows ``docs/systems.md`` W2: naive UTC with ``dates_are_gmt=true``,
        ``orderby=id&order=asc`` so orders that change meanwhile are appended rather than shifting
        pages, and pages are read until ``X-WP-TotalPages`` (the largest any page announced, so
        orders appended while paging are read too). ``after=None`` lists every order.

        Once the first page has told how many there are, up to ``woocommerce.max_concurrency``
        pages are fetched at once; they are still yielded in order.
        """
        size = self.settings.page_size if page_size is None else page_size
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise UsageError(f"page size must be between 1 and {MAX_PAGE_SIZE}, not {size}")
        params = _oldest_first(size)
        if after is not None:
            params["modified_after"] = naive_utc(after)

        def fetch(number: int) -> tuple[OrdersPage, int]:
            page = self._orders_page(params, number, size)
            return page, page.total_pages

        yield from self._pages_ahead(fetch, "pull")

    def _pages_ahead(self, fetch: Callable[[int], tuple[P, int]], name: str) -> Iterator[P]:
        """Pages 1, 2, … of a listing, in order, until the largest page count any page announced
        (``fetch(n)``: page n and that count). Once the first page has told how many there are,
        up to ``woocommerce.max_concurrency`` pages are fetched at once."""
        first, last_page = fetch(1)
        yield first
        if last_page <= 1:
            return
        workers = max(1, min(self.settings.max_concurrency, last_page - 1))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
            ahead: deque[Future[tuple[P, int]]] = deque()
            next_page = 2
            try:
                while ahead or next_page <= last_page:
                    while next_page <= last_page and len(ahead) < workers:
                        ahead.append(pool.submit(fetch, next_page))
                        next_page += 1
                    page, pages = ahead.popleft().result()
                    last_page = max(last_page, pages)
                    yield page
            finally:
                for future in ahead:
                    future.cancel()

    def _orders_page(self, params: dict[str, Any], page: int, size: int) -> OrdersPage:
        """One page of ``GET /orders`` (WooCommerce answers a page past the end with ``[]``)."""
        response, body = self._request("GET", "/orders", params={**params, "page": page})
        if not isinstance(body, list):
            raise ShopError(f"WooCommerce answered GET /orders with {_kind(body)}, not a list")
        total = _int_header(response, "X-WP-Total")
        total_pages = _total_pages(response, page, len(body), size)
        orders = [order for order in body if isinstance(order, dict)]
        return OrdersPage(
            orders=orders,
            page=page,
            total_pages=total_pages,
            total=total if total is not None else len(orders),
            server_date=server_date(response),
        )

    def get_order(self, order_id: int) -> dict[str, Any]:
        """One order (``GET /orders/{id}``); :class:`ShopError` with status 404 if it is unknown."""
        return self._object("GET", f"/orders/{int(order_id)}")

    def add_order_note(
        self, order_id: int, note: str, *, customer_note: bool = False
    ) -> dict[str, Any]:
        """Add a note to an order: private, or with ``customer_note`` shown to the customer and
        e-mailed (on every POST: never sent blindly twice)."""
        return self._object(
            "POST",
            f"/orders/{int(order_id)}/notes",
            json={"note": note, "customer_note": customer_note},
            idempotent=False,
        )

    def set_order_status(self, order_id: int, status: str) -> dict[str, Any]:
        """``PUT /orders/{id}`` with a new status; the order as the shop now has it. Setting the
        same status again sends no second e-mail, so the request is retried as usual."""
        return self._object("PUT", f"/orders/{int(order_id)}", json={"status": status})

    def list_order_notes(self, order_id: int) -> list[dict[str, Any]]:
        """The notes of an order."""
        _, body = self._request("GET", f"/orders/{int(order_id)}/notes")
        if not isinstance(body, list):
            raise ShopError(
                f"WooCommerce answered the notes of order {order_id} with {_kind(body)}"
            )
        return [note for note in body if isinstance(note, dict)]

    def set_orders_meta(self, key: str, values: Mapping[int, str]) -> dict[int, str]:
        """Set one meta entry on many orders with ``POST /orders/batch``, 100 orders a request.

        Returns the orders the shop refused, with its message (WooCommerce answers 200 and puts
        each failed item's error in the list). A shop whose batch limit was lowered (413) gets
        smaller batches. Setting a meta value is idempotent, so the request is retried as usual.
        """
        refused: dict[int, str] = {}
        for chunk, answer in self._batches(
            "/orders/batch",
            values,
            lambda oid, value: {"id": oid, "meta_data": [{"key": key, "value": value}]},
            kind="orders",
        ):
            refused.update(_batch_refusals(answer, [oid for oid, _ in chunk]))
        return refused

    def _batches(
        self,
        path: str,
        values: Mapping[int, V],
        update: Callable[[int, V], dict[str, Any]],
        *,
        kind: str,
    ) -> Iterator[tuple[list[tuple[int, V]], Any]]:
        """``POST path`` with ``{"update": [...]}`` (``update(id, value)`` each), up to 100 items
        a request: each chunk sent with the shop's answer. A 413 halves the batches of this
        ``kind``, for the rest of the run."""
        entries = list(values.items())
        done = 0
        while done < len(entries):
            chunk = entries[done : done + self._batch_sizes.get(kind, BATCH_LIMIT)]
            body = {"update": [update(oid, value) for oid, value in chunk]}
            try:
                _, answer = self._request("POST", path, json=body)
            except ShopError as exc:
                if exc.status == 413 and len(chunk) > 1:
                    self._batch_sizes[kind] = max(1, len(chunk) // 2)
                    continue
                raise
            yield chunk, answer
            done += len(chunk)

    def set_sales_order_numbers(self, numbers: Mapping[int, str]) -> dict[int, str]:
        """Record Dynamics sales order numbers in the orders' meta, 100 orders a request."""
        return self.set_orders_meta(SALES_ORDER_META_KEY, numbers)

    def write_back_note(self, order_id: int, sales_order_number: str, *, again: bool) -> None:
        """Add the private "created in Dynamics" note, once: with ``again`` (an earlier attempt
        may have landed) only when the order does not carry it yet."""
        note = write_back_note(sales_order_number)
        if again and any(e.get("note") == note for e in self.list_order_notes(order_id)):
            return
        self.add_order_note(order_id, note)

    # -- products and stock (woo2d365 stock) -----------------------------------------------------
    def iter_products(
        self, modified_after: datetime | None, *, page_size: int | None = None
    ) -> Iterator[ProductsPage]:
        """Products (variations not included) modified after ``modified_after`` (all when None),
        with only the fields stock needs, page by page, oldest id first (as for orders); once
        the first page has told how many there are, up to ``woocommerce.max_concurrency`` at once.
        """
        size = self.settings.page_size if page_size is None else page_size
        params = {**_oldest_first(size), "_fields": PRODUCT_FIELDS}
        if modified_after is not None:
            params["modified_after"] = naive_utc(modified_after)
        yield from self._pages_ahead(
            lambda number: self._products_page(params, number, size), "products"
        )

    def _products_page(
        self, params: dict[str, Any], page: int, size: int
    ) -> tuple[ProductsPage, int]:
        """One page of ``GET /products`` and the number of pages the shop announced."""
        response, body = self._request("GET", "/products", params={**params, "page": page})
        if not isinstance(body, list):
            raise ShopError(f"WooCommerce answered GET /products with {_kind(body)}")
        products = [p for p in body if isinstance(p, dict)]
        total_pages = _total_pages(response, page, len(products), size)
        return ProductsPage(products, server_date(response)), total_pages

    def product_variations(self, product_id: int) -> list[dict[str, Any]]:
        """Every variation of a variable product, with only the fields stock needs."""
        found: list[dict[str, Any]] = []
        page, last_page = 1, 1
        params: dict[str, Any] = {"per_page": MAX_PAGE_SIZE, "_fields": VARIATION_FIELDS}
        while page <= last_page:
            response, body = self._request(
                "GET", f"/products/{int(product_id)}/variations", params={**params, "page": page}
            )
            if not isinstance(body, list):
                raise ShopError(
                    f"WooCommerce answered the variations of product {product_id} with "
                    f"{_kind(body)}"
                )
            found += [v for v in body if isinstance(v, dict)]
            last_page = max(last_page, _total_pages(response, page, len(body), MAX_PAGE_SIZE))
            page += 1
        return found

    def set_stock(self, parent_id: int | None, quantities: Mapping[int, int]) -> StockAnswer:
        """Set ``manage_stock`` and ``stock_quantity`` of products (``parent_id`` None, through
        ``POST /products/batch``) or of variations of one parent (``…/variations/batch``).

        Up to 100 items a request; a 413 halves the batch (kept for the rest of the run). What
        the shop refused is read from the items of its 200 answer. Setting an absolute quantity
        is idempotent, so the request is retried as usual.
        """
        path = (
            "/products/batch"
            if parent_id is None
            else (f"/products/{int(parent_id)}/variations/batch")
        )
        answer = StockAnswer()
        for chunk, reply in self._batches(
            path,
            quantities,
            lambda oid, quantity: {"id": oid, "manage_stock": True, "stock_quantity": quantity},
            kind="stock",
        ):
            asked = [oid for oid, _ in chunk]
            refused = _batch_refusals(reply, asked)
            answer.refused.update(refused)
            for item in reply.get("update") or [] if isinstance(reply, dict) else []:
                if isinstance(item, dict) and item.get("id") in asked and "error" not in item:
                    answer.written[int(item["id"])] = item
        return answer

    # -- end products and stock ---------------------------------------------------------------

    # -- refunds (docs/systems.md W7) --------------------------------------------------
    def iter_refunds_created_after(
        self, after: datetime | None, *, page_size: int | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """Every refund created after ``after`` (``GET /refunds``, WooCommerce 9.0 and later),
        page by page, oldest id first; :class:`ShopError` with status 404 on an older shop."""
        size = self.settings.page_size if page_size is None else page_size
        params = _oldest_first(size)
        if after is not None:
            params["after"] = naive_utc(after)
        page, last_page = 1, 1
        while page <= last_page:
            response, body = self._request("GET", "/refunds", params={**params, "page": page})
            if not isinstance(body, list):
                raise ShopError(f"WooCommerce answered GET /refunds with {_kind(body)}, not a list")
            last_page = max(last_page, _total_pages(response, page, len(body), size))
            yield [refund for refund in body if isinstance(refund, dict)]
            page += 1

    def list_order_refunds(self, order_id: int) -> list[dict[str, Any]]:
        """The refunds of one order (``GET /orders/{id}/refunds``), all pages."""
        found: list[dict[str, Any]] = []
        page, last_page = 1, 1
        while page <= last_page:
            response, body = self._request(
                "GET", f"/orders/{int(order_id)}/refunds", params={"per_page": 100, "page": page}
            )
            if not isinstance(body, list):
                raise ShopError(
                    f"WooCommerce answered the refunds of order {order_id} with {_kind(body)}"
                )
            pages = _int_header(response, "X-WP-TotalPages")
            last_page = max(last_page, pages if pages is not None else page)
            found.extend(refund for refund in body if isinstance(refund, dict))
            page += 1
        return found

    def add_note_once(self, order_id: int, note: str) -> None:
        """A private note, unless the order carries this very note already."""
        if any(entry.get("note") == note for entry in self.list_order_notes(order_id)):
            return
        self.add_order_note(order_id, note)

    def check_access(self, *, probe_write: bool = True) -> ShopInfo:
        """Check that the shop answers and accepts the key; discover what can be discovered.

        Raises :class:`ShopUnreachable` or :class:`ShopAuthenticationError` (or another
        :class:`ShopError`) when the shop cannot be read at all. See :class:`ShopInfo`.
        """
        notes: list[str] = []
        response, body = self._request("GET", "/orders", params={"per_page": 1})
        if not isinstance(body, list):
            raise ShopError(f"WooCommerce answered GET /orders with {_kind(body)}, not a list")
        can_write: bool | None = None
        if probe_write:
            can_write = self._probe_write(notes)
        hpos: bool | None = None
        datastore: str | None = None
        try:
            _, status = self._request("GET", "/system_status", params={"_fields": "settings"})
        except (ShopError, ShopUnreachable) as exc:
            notes.append(f"order storage (HPOS) unknown: {exc}")
        else:
            settings = status.get("settings") if isinstance(status, dict) else None
            if isinstance(settings, dict) and isinstance(settings.get("HPOS_enabled"), bool):
                hpos = settings["HPOS_enabled"]
                store = settings.get("order_datastore")
                datastore = store if isinstance(store, str) else None
            else:
                notes.append("order storage (HPOS) unknown: system status has no HPOS_enabled")
        return ShopInfo(
            url=redact_url(self.site),
            auth=self.settings.auth,
            orders_total=_int_header(response, "X-WP-Total"),
            can_write=can_write,
            hpos=hpos,
            order_datastore=datastore,
            server_date=server_date(response),
            notes=tuple(notes),
        )

    # -- requests --------------------------------------------------------------------------

    def _probe_write(self, notes: list[str]) -> bool | None:
        try:
            self._request("PUT", "/orders/0", json={})
        except ShopAuthenticationError:
            return False
        except ShopError as exc:
            if exc.code == "woocommerce_rest_shop_order_invalid_id":
                return True
            notes.append(f"write permission unknown: {exc}")
            return None
        return True

    def _object(
        self, method: str, path: str, *, json: Any = None, idempotent: bool = True
    ) -> dict[str, Any]:
        _, body = self._request(method, path, json=json, idempotent=idempotent)
        if not isinstance(body, dict):
            raise ShopError(f"WooCommerce answered {method} {path} with {_kind(body)}")
        return body

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        idempotent: bool = True,
    ) -> tuple[requests.Response, Any]:
        """Send one API call under the retry policy; return the response and its JSON body."""
        try:
            return self._send(method, path, params, json, idempotent)
        except _Retry as failure:
            tries = "1 try" if self.max_tries == 1 else f"{self.max_tries} tries"
            raise ShopUnreachable(
                self._redact(
                    f"WooCommerce at {redact_url(self.site)} did not answer {method} {path} "
                    f"after {tries}: {failure.reason}"
                ),
                status=failure.status,
            ) from None

    def _send_once(
        self, method: str, path: str, params: dict[str, Any] | None, body: Any, idempotent: bool
    ) -> tuple[requests.Response, Any]:
        with self._count_lock:
            self.request_count += 1
        try:
            response = self._session.request(
                method,
                self.base_url + path,
                params={**(params or {}), **self._query_auth},
                json=body,
                timeout=self._timeout,
                allow_redirects=method == "GET",
            )
        except requests.exceptions.SSLError as exc:
            raise ShopUnreachable(self._tls_message(exc)) from None
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            reason = self._connection_reason(exc)
            not_sent = isinstance(exc, requests.exceptions.ConnectTimeout) or (
                "NewConnectionError" in repr(exc)
            )
            if idempotent or not_sent:
                raise _Retry(reason) from None
            raise ShopUnreachable(
                self._redact(f"WooCommerce at {redact_url(self.site)}: {reason}")
            ) from None
        except requests.RequestException as exc:
            raise ShopError(
                self._redact(f"cannot call WooCommerce at {redact_url(self.site)}: {exc}")
            ) from None
        status = response.status_code
        if status in RETRYABLE_STATUSES:
            if idempotent or status in _NOT_RECEIVED_STATUSES:
                raise _Retry(
                    self._status_line(response),
                    status=status,
                    retry_after=retry_after_seconds(response),
                )
            # The shop may have acted on it: no blind repeat now; the caller retries next run.
            raise ShopUnreachable(
                self._redact(
                    f"WooCommerce at {redact_url(self.site)} answered {method} {path} with "
                    f"{self._status_line(response)}"
                ),
                status=status,
            )
        if 200 <= status < 300:
            try:
                return response, _json_body(response)
            except ValueError:
                raise ShopError(
                    self._redact(
                        f"WooCommerce answered {method} {path} with {_describe_body(response)} "
                        f"instead of JSON; is woocommerce.url the site root "
                        f"({redact_url(self.site)})?"
                    ),
                    status=status,
                ) from None
        raise self._error(method, path, response)

    # -- messages --------------------------------------------------------------------------

    def _error(self, method: str, path: str, response: requests.Response) -> ShopError:
        status = response.status_code
        code, message = _error_fields(response)
        if code is not None:
            summary = f"{status} {code}: {message}" if message else f"{status} {code}"
        else:
            summary = f"{status} with {_describe_body(response)}"
        if status == 401:
            text = (
                f"WooCommerce refused the API key ({summary}). {self._auth_hint(method, message)}"
            )
            return ShopAuthenticationError(self._redact(text), status=status, code=code)
        text = f"WooCommerce answered {summary}"
        if code == "rest_no_route":
            text += (
                f" ({method} {API_PATH}{path}); is woocommerce.url the WordPress site root "
                "with pretty permalinks and WooCommerce active?"
            )
        elif status == 403 and code is None:
            text += "; a firewall or CDN in front of the shop blocked the request"
        return ShopError(self._redact(text), status=status, code=code)

    def _auth_hint(self, method: str, message: str) -> str:
        lowered = message.lower()
        if "permission" in lowered and method != "GET":
            return (
                "The API key is read-only: give it Read/Write permission in WooCommerce → "
                "Settings → Advanced → REST API."
            )
        if "secret is invalid" in lowered:
            return (
                "woocommerce.consumer_secret does not belong to the consumer key (look for a "
                "pasted space or line break)."
            )
        if "key is invalid" in lowered:
            return "WooCommerce does not know woocommerce.consumer_key."
        causes = ["the consumer key or secret is wrong"]
        if method != "GET":
            causes.append("the key is read-only and this was a write")
        if self.settings.auth == "basic":
            causes.append(
                'the web server or a CDN strips the Authorization header (try auth = "query")'
            )
        if self.settings.auth != "oauth1":
            causes.append(
                "WordPress does not see https behind a proxy; over plain http only "
                'auth = "oauth1" works'
            )
        else:
            causes.append("the shop's clock is more than 15 minutes off")
        return "Likely causes: " + "; ".join(causes) + "."

    def _status_line(self, response: requests.Response) -> str:
        code, message = _error_fields(response)
        if code is not None:
            return self._redact(f"{response.status_code} {code}: {message}".rstrip(": "))
        reason = response.reason or ""
        line = f"{response.status_code} {reason}".strip()
        if response.content:
            line += f" ({_describe_body(response)})"
        return self._redact(line)

    def _connection_reason(self, exc: requests.RequestException) -> str:
        text = repr(exc)
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return f"no connection within {self._timeout:g} s"
        if isinstance(exc, requests.exceptions.ReadTimeout):
            return f"no answer within {self._timeout:g} s"
        if isinstance(exc, requests.exceptions.ChunkedEncodingError):
            return "the connection broke off in the middle of the answer"
        if "RemoteDisconnected" in text or "Connection aborted" in text or "reset" in text:
            return "the connection was dropped without an answer"
        if "refused" in text.lower():
            return "connection refused"
        if "NameResolution" in text or "getaddrinfo" in text or "not known" in text:
            return f"host name {urlsplit(self.site).hostname!r} not found"
        return "the connection failed"

    def _tls_message(self, exc: requests.exceptions.SSLError) -> str:
        if "CERTIFICATE_VERIFY_FAILED" in repr(exc):
            problem = "its TLS certificate could not be verified"
            hint = (
                "; if the shop uses a private CA, point REQUESTS_CA_BUNDLE at the CA bundle "
                "(verification is never switched off)"
            )
        else:
            problem, hint = "the TLS handshake failed", ""
        return self._redact(f"WooCommerce at {redact_url(self.site)}: {problem}{hint}")

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


# -- helpers -------------------------------------------------------------------------------------


def naive_utc(moment: datetime) -> str:
    """``moment`` as naive UTC to the second, as WooCommerce wants it with ``dates_are_gmt=true``.

    A naive ``moment`` is taken as UTC. Fractions are cut off, which only widens the window of
    WooCommerce's strict ``modified_after`` comparison.
    """
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None, microsecond=0).isoformat(timespec="seconds")


def _check_url(url: str) -> str:
    if not url:
        raise ConfigError("woocommerce.url is required (the shop's site root, https://…)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"woocommerce.url must be the shop's site root like https://shop.example.com, "
            f"not {redact_url(url)!r}"
        )
    if parts.query or parts.fragment:
        raise ConfigError("woocommerce.url must not have a query or fragment")
    path = parts.path.rstrip("/")
    if path.endswith(API_PATH) or path.endswith("/wp-json"):
        raise ConfigError(
            f"woocommerce.url is the site root; leave out {path[path.rfind('/wp-json') :]}"
        )
    return url.rstrip("/")


def _secret_forms(*secrets: str) -> list[str]:
    """Every spelling of each secret that can appear in a message (raw and URL-encoded)."""
    forms: set[str] = set()
    for secret in secrets:
        if secret:
            forms.update({secret, quote(secret, safe=""), quote_plus(secret)})
    return sorted(forms, key=len, reverse=True)


def _batch_refusals(answer: Any, asked: list[int]) -> dict[int, str]:
    """The orders of a batch answer that were not updated, with the shop's message."""
    updated = answer.get("update") if isinstance(answer, dict) else None
    if not isinstance(updated, list):
        return dict.fromkeys(asked, f"the shop answered the batch with {_kind(answer)}")
    refused: dict[int, str] = {}
    done: set[int] = set()
    for item in updated:
        order_id = item.get("id") if isinstance(item, dict) else None
        if not isinstance(order_id, int) or order_id not in asked:
            continue  # not ours to judge: an asked order without an item is reported below
        error = item.get("error")
        if isinstance(error, dict):
            code, message = error.get("code") or "error", error.get("message") or ""
            refused[order_id] = _one_line(f"{message} ({code})" if message else str(code))
        else:
            done.add(order_id)
    for order_id in asked:
        if order_id not in done and order_id not in refused:
            refused[order_id] = "the shop's batch answer does not mention this order"
    return refused


def _oldest_first(size: int) -> dict[str, Any]:
    """Listing parameters: pages of ``size``, oldest id first, dates in UTC (``docs/systems.md``
    W2: entries that change meanwhile are appended rather than shifting pages)."""
    return {"dates_are_gmt": "true", "orderby": "id", "order": "asc", "per_page": size}


def _total_pages(response: requests.Response, page: int, count: int, size: int) -> int:
    """``X-WP-TotalPages``; when a proxy dropped it, read on until a short page (``count`` of
    ``size`` entries on ``page``)."""
    total_pages = _int_header(response, "X-WP-TotalPages")
    if total_pages is None:
        return page + 1 if count >= size else page
    return total_pages


# A \uD800-\uDFFF escape: a high-low pair (12 bytes), or one alone (6 bytes), which JSON
# allows and UTF-8 cannot hold. Pairs are taken first.
# Matched forwards from the literal "\\u": about 50 times faster than looking around each
# position, which cost more than reading the JSON itself on a page of 100 orders.
_SURROGATE_ESCAPE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    rb"|\\u[dD][89a-fA-F][0-9a-fA-F]{2}"
)


def _json_body(response: requests.Response) -> Any:
    """The answer's JSON; a lone surrogate escape in a text becomes U+FFFD.

    Python's JSON reader keeps it as a character no database or UTF-8 file can store, so one
    such text (a plugin's doing, never WooCommerce's own JSON) would stop every run at the
    order's first write instead of the order going on with one replaced character.
    """
    body = response.json()
    content = response.content
    # A text holding a backslash then "u" (rare) can make the pattern see a pair where the
    # JSON has none: such a body is checked text by text too.
    lone = any(len(m.group()) == 6 for m in _SURROGATE_ESCAPE.finditer(content))
    if lone or b"\\\\u" in content:
        return _storable(body)
    return body


def _storable(value: Any) -> Any:
    """``value`` with every lone surrogate in its texts (keys included) replaced by U+FFFD."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return value
    if isinstance(value, list):
        return [_storable(item) for item in value]
    if isinstance(value, dict):
        return {_storable(key): _storable(item) for key, item in value.items()}
    return value


def _int_header(response: requests.Response, name: str) -> int | None:
    value = response.headers.get(name, "").strip()
    return int(value) if value.isascii() and value.isdigit() else None


def _error_fields(response: requests.Response) -> tuple[str | None, str]:
    """``code`` and ``message`` of a WordPress error body; ``(None, "")`` when it is not one.

    ``data`` may be an object or a bare integer; its ``params`` explain a 400.
    """
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None, ""
    if not isinstance(body, dict) or not isinstance(body.get("code"), str):
        return None, ""
    message = body.get("message")
    text = _one_line(message) if isinstance(message, str) else ""
    data = body.get("data")
    params = data.get("params") if isinstance(data, dict) else None
    if isinstance(params, dict) and params:
        details = "; ".join(_one_line(str(v)) for v in params.values() if v)
        if details:
            text = f"{text} ({details})" if text else details
    return body["code"], text


def _describe_body(response: requests.Response) -> str:
    text = response.text or ""
    content_type = response.headers.get("Content-Type", "")
    if "html" in content_type.lower() or text.lstrip()[:1] == "<":
        match = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        title = _one_line(re.sub(r"<[^>]+>", " ", match.group(1))) if match else ""
        return f"an HTML page ({title[:80]!r})" if title else "an HTML page"
    if not text.strip():
        return "an empty body"
    return f"a body that is not JSON ({_one_line(text)[:60]!r})"


def _one_line(text: str) -> str:
    return " ".join(unescape(text).split())


def _kind(body: Any) -> str:
    if isinstance(body, list):
        return "a list"
    if isinstance(body, dict):
        return "an object"
    return f"a JSON {type(body).__name__}"
