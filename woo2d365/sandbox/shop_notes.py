"""Order notes in the shop emulator: adding them as WooCommerce does, and the
``/orders/{id}/notes`` routes (list, create, get, delete with ``force``).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from woo2d365.sandbox.shop_rest import (
    ApiError,
    Invalid,
    Request,
    Response,
    json_response,
    refuse_invalid_json,
)


class OrderNotes:
    """The order notes part of the shop emulator (a mixin: the emulator holds the state)."""

    orders: dict[int, dict[str, Any]]
    notes: dict[int, list[dict[str, Any]]]
    _next_note_id: int
    _lock: threading.RLock

    def now(self) -> datetime:
        """The shop's clock."""
        raise NotImplementedError

    def _stamps(self, moment: datetime) -> tuple[str, str]:
        raise NotImplementedError

    def _rest_url(self, route: str) -> str:
        raise NotImplementedError

    def add_note(
        self,
        order_id: int,
        note: str,
        *,
        customer_note: bool = False,
        author: str = "WooCommerce",
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """Add an order note directly (does not bump ``date_modified``, as in WooCommerce)."""
        moment = (at or self.now()).astimezone(UTC).replace(microsecond=0)
        with self._lock:
            if order_id not in self.orders:
                raise KeyError(order_id)
            local, gmt = self._stamps(moment)
            entry = {
                "id": self._next_note_id,
                "author": author,
                "date_created": local,
                "date_created_gmt": gmt,
                "note": note,
                "customer_note": customer_note,
            }
            self._next_note_id += 1
            self.notes.setdefault(order_id, []).append(entry)
            return entry

    def _present_note(self, order_id: int, note: dict[str, Any]) -> dict[str, Any]:
        base = self._rest_url(f"/wc/v3/orders/{order_id}")
        return {
            **note,
            "_links": {
                "self": [
                    {
                        "href": f"{base}/notes/{note['id']}",
                        "targetHints": {"allow": ["GET", "DELETE"]},
                    }
                ],
                "collection": [{"href": f"{base}/notes"}],
                "up": [{"href": base}],
            },
        }

    def _list_notes(self, req: Request, authenticated: bool, order_id: int) -> Response:
        invalid = Invalid()
        invalid.enum(req, "context", "view", ("view", "edit"))
        kind = invalid.enum(req, "type", "any", ("any", "customer", "internal"))
        invalid.raise_if_any()
        if not authenticated:
            raise ApiError(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
        with self._lock:
            if order_id not in self.orders:
                raise ApiError(404, "woocommerce_rest_shop_order_invalid_id", "Invalid order ID.")
            notes = [
                n
                for n in self.notes.get(order_id, [])
                if kind == "any" or bool(n.get("customer_note")) == (kind == "customer")
            ]
            ordered = sorted(notes, key=lambda n: n["id"])
            ordered.sort(key=lambda n: n.get("date_created_gmt") or "", reverse=True)
            return json_response(200, [self._present_note(order_id, n) for n in ordered])

    def _create_note(self, req: Request, authenticated: bool, order_id: int) -> Response:
        refuse_invalid_json(req)
        if not req.has("note"):
            raise ApiError(
                400, "rest_missing_callback_param", "Missing parameter(s): note", params=["note"]
            )
        invalid = Invalid()
        customer_note = invalid.boolean(req, "customer_note", False)
        added_by_user = invalid.boolean(req, "added_by_user", False)
        invalid.raise_if_any()
        if not authenticated:
            raise ApiError(
                401,
                "woocommerce_rest_cannot_create",
                "Sorry, you are not allowed to create resources.",
            )
        if order_id not in self.orders:
            raise ApiError(404, "woocommerce_rest_shop_order_invalid_id", "Invalid order ID.")
        note = self.add_note(
            order_id,
            str(req.param("note")),
            customer_note=customer_note,
            author="Shop Manager" if added_by_user else "WooCommerce",
        )
        location = self._rest_url(f"/wc/v3/orders/{order_id}/notes/{note['id']}")
        return json_response(201, self._present_note(order_id, note), [("Location", location)])

    def _find_note(self, order_id: int, note_id: int) -> dict[str, Any]:
        if order_id not in self.orders:
            raise ApiError(404, "woocommerce_rest_shop_order_invalid_id", "Invalid order ID.")
        for note in self.notes.get(order_id, []):
            if note["id"] == note_id:
                return note
        raise ApiError(404, "woocommerce_rest_invalid_id", "Invalid resource ID.")

    def _get_note(self, req: Request, authenticated: bool, order_id: int, note_id: int) -> Response:
        if not authenticated:
            raise ApiError(
                401, "woocommerce_rest_cannot_view", "Sorry, you cannot view this resource."
            )
        with self._lock:
            return json_response(
                200, self._present_note(order_id, self._find_note(order_id, note_id))
            )

    def _delete_note(
        self, req: Request, authenticated: bool, order_id: int, note_id: int
    ) -> Response:
        invalid = Invalid()
        force = invalid.boolean(req, "force", False)
        invalid.raise_if_any()
        if not authenticated:
            raise ApiError(
                401,
                "woocommerce_rest_cannot_delete",
                "Sorry, you are not allowed to delete this resource.",
            )
        with self._lock:
            note = self._find_note(order_id, note_id)
            if not force:
                raise ApiError(
                    501, "woocommerce_rest_trash_not_supported", "Webhooks do not support trashing."
                )
            self.notes[order_id].remove(note)
            return json_response(200, self._present_note(order_id, note))
