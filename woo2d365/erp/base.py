"""The ERP target interface the pipeline talks to.

A target turns canonical :class:`~woo2d365.model.Order` objects into documents of one ERP and
creates them exactly once. Business Central (:mod:`woo2d365.erp.businesscentral`) and
Finance & Operations
(:mod:`woo2d365.erp.financeoperations`: header and lines, ``CustomersOrderReference`` as the
idempotency key) implement it; ``dynamics.product`` picks one in ``Runtime.erp``.

How the pipeline uses it:

* ``validate``: :meth:`ErpTarget.refresh_items` once per run (the item mirror in the state store),
  then per order :meth:`ErpTarget.check_order` (document number, countries: cached data only, never
  a request per order) beside its own line resolution against the item mirror.
* ``push``: :meth:`ErpTarget.find_many` for a batch of orders about to be created (what exists
  is adopted, never created again; more than one document with the key holds the order), and
  for the keys it did not find, :meth:`ErpTarget.posted_keys` (read once per run) then
  :meth:`ErpTarget.find_traces` for those it names (an order invoiced and deleted is adopted),
  :meth:`ErpTarget.prepare` (may look up or create the customer), then exactly one
  :meth:`ErpTarget.create` fenced by a :class:`SendGuard`; an order left in doubt is resolved
  with :meth:`ErpTarget.find`.
* ``retry --force`` and ``reconcile``: :meth:`ErpTarget.find_traces`, the one answer to "is this
  order's document still in the ERP?" (its sales order, or what was posted from it).

A target raises the errors of :mod:`woo2d365.errors` (``DocumentRefused``, ``DocumentInDoubt``,
``WaitingForDynamics``, ``DynamicsUnreachable``, ``OrderDataError``...); what each means for the
order, the run and the exit code is the one table :data:`woo2d365.errors.OUTCOMES`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from woo2d365.model import Line, Order, Refund
from woo2d365.store.mirror import CachedItem


@dataclass(frozen=True)
class PreparedDocument:
    """One document ready to be created: the exact request body and what was noticed building it.

    ``payload`` is JSON-ready (numbers are ``int``/``float`` with the exact decimal value, no
    ``None``); ``warnings`` are for the order's events (truncated fields, dropped e-mail...).
    ``placeholder_customer`` is True in a dry run when the customer would be created first, so the
    customer reference in ``payload`` is a stand-in.
    """

    woo_id: int
    external_number: str
    payload: dict[str, Any]
    warnings: tuple[str, ...] = ()
    placeholder_customer: bool = False
    notes: tuple[str, ...] = ()  # facts for the order's events, not problems (customer created)
    new_customer: dict[str, Any] | None = None  # the customer a dry run would create


@dataclass(frozen=True)
class CreatedDocument:
    """A document that exists in the ERP.

    ``others`` are the numbers of further documents carrying the same external number (a key
    the ERP does not keep unique): the pipeline then holds the order for a person to choose.
    """

    id: str
    number: str
    external_number: str
    total_including_tax: Decimal | None = None
    others: tuple[str, ...] = ()
    # The ERP's status where it has one ("Draft", "Open"...); not part of the document's identity.
    status: str = field(default="", compare=False)
    # Of a credit memo, as its ERP reads its status: surely not posted yet (a draft, perhaps
    # waiting for an approval), and waiting for an approval before it can be posted. A released
    # draft and a posted memo may show the same status: posting is told by its new ``number``.
    draft: bool = field(default=False, compare=False)
    awaiting_approval: bool = field(default=False, compare=False)


class SendGuard(Protocol):
    """The pipeline's fence around one create: consulted before every send of it.

    ``before_slot`` is asked before the request waits for a request slot (where a store write
    costs no slot time), ``before_send`` inside the slot right before the request leaves.
    """

    def before_slot(self) -> None:
        """Raise :class:`~woo2d365.errors.ClaimLost` if the order's claim is no longer held;
        otherwise renew it and record the send time (before every send and re-send)."""
        ...

    def before_send(self) -> None:
        """Raise :class:`~woo2d365.errors.ClaimLost` if the request may no longer leave: the
        last moment ``before_slot`` recorded has passed and the claim is lost, or the run lost
        its lease. Fast when ``before_slot`` has just run."""
        ...

    def not_sent(self) -> None:
        """The last send certainly never ran (429/502/503, no connection): not in doubt."""
        ...


class ItemLookup(Protocol):
    """Where validation looks items up: the store's mirror, or a dry run's unsaved view of it."""

    def items_by_number(self, numbers: list[str]) -> dict[str, CachedItem]:
        """Mirrored items for these numbers."""
        ...


@dataclass(frozen=True)
class ItemRefresh:
    """What one refresh of the item mirror did.

    ``items`` is set by a dry run: the refreshed mirror as a view, since nothing was written.
    """

    full: bool
    fetched: int
    requests: int = 0
    items: ItemLookup | None = None


# -- posted documents (woo2d365 shipments) -----------------------------------------------------
@dataclass(frozen=True)
class PostedShipment:
    """A posted shipment as the ERP shows it; ``lines`` maps the order line's sequence to the
    quantity this shipment shipped."""

    id: str
    number: str
    external_number: str
    order_number: str
    posted_on: str  # YYYY-MM-DD
    modified: str  # the ERP's own modification timestamp, ISO 8601
    lines: dict[int, Decimal]
    agent: str = ""
    tracking: str = ""


@dataclass(frozen=True)
class ShipmentTracking:
    """Shipping agent and package tracking number of a posted shipment."""

    id: str
    number: str
    external_number: str
    order_number: str
    agent: str
    tracking: str
    modified: str


@dataclass(frozen=True)
class PostedInvoice:
    """A posted invoice; ``order_id`` is the sales order's id when posted from it."""

    id: str
    number: str
    external_number: str
    order_number: str
    order_id: str
    status: str
    currency: str
    total_including_tax: Decimal
    total_excluding_tax: Decimal
    remaining: Decimal
    posted_on: str
    modified: str


@dataclass(frozen=True)
class DocumentRef:
    """What the store knows of an order's document: its key, and the sales order's number and
    id once it was pushed (either may be blank)."""

    external_number: str
    number: str = ""
    id: str = ""


@dataclass(frozen=True)
class PostedDocument:
    """A posted document made from a sales order: ``kind`` is ``"invoice"`` or ``"shipment"``;
    ``order_number`` and ``order_id`` name that sales order where the document carries them."""

    kind: str
    number: str
    order_number: str = field(default="", compare=False)
    order_id: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"posted {self.kind} {self.number}"


@dataclass(frozen=True)
class DocumentTrace:
    """What the ERP still holds of one order's document: the sales order, or, once the ERP has
    deleted it (Business Central deletes a fully invoiced one), the invoices and shipments
    posted from it. Either means the order is in the ERP and is never sent again."""

    sales_order: CreatedDocument | None = None
    posted: tuple[PostedDocument, ...] = ()

    @property
    def exists(self) -> bool:
        """The order's document is in the ERP, as the sales order or as what was posted."""
        return self.sales_order is not None or bool(self.posted)

    def document(self, external_number: str) -> CreatedDocument | None:
        """What the order is recorded ``pushed`` to: its sales order, else the sales order the
        posted documents name (its number and id as they carry them, else the first posted
        document's number); None when nothing is left."""
        if self.sales_order is not None:
            return self.sales_order
        if not self.posted:
            return None
        named = [p for p in self.posted if p.order_number or p.order_id]
        posted = named[0] if named else self.posted[0]
        number = posted.order_number or posted.number
        return CreatedDocument(id=posted.order_id, number=number, external_number=external_number)

    def __str__(self) -> str:
        if self.sales_order is not None:
            return f"sales order {self.sales_order.number}"
        return ", ".join(str(document) for document in self.posted) or "nothing"


# -- end of posted documents -------------------------------------------------------------------


class ErpTarget(Protocol):
    """What the pipeline needs from an ERP; one instance per run, safe to share between threads."""

    display_name: str
    """Name for messages and write-back notes, e.g. ``"Dynamics 365"``."""

    def connect(self) -> None:
        """Get a token and find the company: raises before any order is touched when the ERP
        cannot be reached (:class:`~woo2d365.errors.DynamicsUnreachable`) or refuses the
        credentials (:class:`~woo2d365.errors.DynamicsAuthenticationError`)."""
        ...

    def refresh_items(self, *, full: bool = False, dry_run: bool = False) -> ItemRefresh:
        """Bring the item mirror in the state store up to date (incremental unless ``full``).

        A dry run fetches the same but writes nothing; the result's ``items`` is the view.
        """
        ...

    def external_number(self, order: Order) -> str:
        """The idempotency key of the order's document; :class:`OrderDataError` if it cannot be."""
        ...

    def load_checks(self) -> None:
        """Read what :meth:`check_order` needs (country codes), once per run, before any store
        transaction; an ERP that cannot be reached leaves those checks out."""
        ...

    def check_order(self, order: Order) -> list[str]:
        """Problems with the order's data only this ERP sees, as reasons; no per-order requests."""
        ...

    def prefetch_customers(self, addresses: Iterable[str], *, dry_run: bool = False) -> int:
        """Look up the customers of these e-mail addresses in bulk before a push (0 if no use).

        Returns the number of requests made; what it finds saves each order its own lookup.
        """
        ...

    def prepare(
        self,
        order: Order,
        item_numbers: Sequence[str | None],
        *,
        dry_run: bool = False,
        key: str | None = None,
    ) -> PreparedDocument:
        """Build the document; ``item_numbers`` aligns with ``order.lines`` (None: not an item).

        ``key`` is the idempotency key fixed when the order was claimed (else computed). May find
        or create the customer (a dry run only looks it up and uses a placeholder).
        """
        ...

    def create(self, document: PreparedDocument, guard: SendGuard | None = None) -> CreatedDocument:
        """Create the document with exactly one create request (never sent twice blindly);
        ``guard`` is consulted before every send (before its slot and again inside it)."""
        ...

    def find(self, external_number: str) -> CreatedDocument | None:
        """The document with this external number, if the ERP has one."""
        ...

    def find_number(self, number: str) -> CreatedDocument | None:
        """The document with this ERP number (e.g. one entered by hand), if it exists."""
        ...

    def find_many(self, external_numbers: Sequence[str]) -> dict[str, CreatedDocument]:
        """The documents of these external numbers that exist, in batched requests."""
        ...

    def documents_with_prefix(self, prefix: str) -> list[CreatedDocument]:
        """Every document whose external number starts with ``prefix`` (this tool's), paged."""
        ...

    def find_traces(self, refs: Sequence[DocumentRef]) -> dict[DocumentRef, DocumentTrace]:
        """Does each order's document still exist? One answer per ref: its sales order (by
        number, else by key), else what was posted from it (an ERP that deletes invoiced sales
        orders keeps the posted invoices and shipments); an empty trace when it is gone.
        Batched requests, never one per order. ``retry --force`` and ``reconcile`` ask only this.
        """
        ...

    def posted_keys(self, prefix: str, since: datetime) -> set[str]:
        """The keys (upper-case) of this tool's documents (``prefix``) with a posted invoice or
        shipment changed after the ERP timestamp ``since``: what may be left of a sales order
        the ERP deleted once it was invoiced. Paged reads of the keys alone; an ERP that keeps
        invoiced sales orders answers an empty set without a request."""
        ...

    # -- stock (woo2d365 stock) ----------------------------------------------------------------
    def item_inventory(self) -> dict[str, Decimal]:
        """On-hand inventory of every stock-kept item by item number (all locations, posted
        quantities only), read in as few requests as the ERP's page size allows."""
        ...

    # -- end stock ------------------------------------------------------------------------------

    # -- posted documents (woo2d365 shipments) -------------------------------------------
    def posted_shipments(self, prefix: str, since: datetime | None) -> list[PostedShipment]:
        """Posted shipments of documents whose external number starts with ``prefix``, changed
        after the ERP timestamp ``since`` (all when None), with their lines; paged reads."""
        ...

    def shipment_tracking(
        self, prefix: str, since: datetime | None
    ) -> list[ShipmentTracking] | None:
        """Agent and tracking number of posted shipments changed after ``since``; None when the
        ERP has no source for them (not configured)."""
        ...

    def posted_invoices(self, prefix: str, since: datetime | None) -> list[PostedInvoice]:
        """Posted invoices of this tool's documents changed after ``since``; paged reads."""
        ...

    def goods_lines(self, order: Order) -> dict[int, Line]:
        """Line sequence → the order's goods line on the pushed document (what has to ship
        before the order is complete); computed from the order, no request."""
        ...

    def check_follow_up(self, step: str) -> None:
        """Raise :class:`~woo2d365.errors.ConfigError` when this ERP cannot do the follow-up
        ``step`` (``shipments``, ``refunds``, ``stock``), before the step reads anything."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...

    # -- credit memos for shop refunds (pipeline/refunds.py) -----------------------------------
    def credit_memo_number(self, order: Order, refund_id: int) -> str:
        """The idempotency key of a refund's credit memo; :class:`OrderDataError` if none."""
        ...

    def prepare_credit_memo(
        self,
        refund: Refund,
        order: Order,
        item_numbers: Mapping[int, str | None],
        *,
        sales_order_id: str | None,
        key: str,
    ) -> PreparedDocument:
        """The credit memo of ``refund``, for the customer of the order's sales order
        (``sales_order_id``); ``item_numbers`` maps the order's line ids to item numbers.
        Reads Dynamics (customer, price basis) but creates nothing."""
        ...

    def create_credit_memo(
        self, document: PreparedDocument, guard: SendGuard | None = None
    ) -> CreatedDocument:
        """Create the credit memo with one create request, fenced like :meth:`create`."""
        ...

    def find_credit_memo(self, external_number: str) -> CreatedDocument | None:
        """The credit memo with this external number (draft or posted), if any."""
        ...

    def find_credit_memos(self, external_numbers: Sequence[str]) -> dict[str, CreatedDocument]:
        """The credit memos of these external numbers that exist, in batched requests."""
        ...

    def post_credit_memo(self, document_id: str) -> CreatedDocument:
        """Post a draft credit memo; the posted document (its number changes)."""
        ...
