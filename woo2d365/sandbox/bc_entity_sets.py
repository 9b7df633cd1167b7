"""The entity sets the Business Central emulator serves: their names, entity types and schemas,
which are read-only or not served, where their rows come from, and the errors of a path that
names none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from woo2d365.sandbox import bc_credit_memos as cm
from woo2d365.sandbox import bc_model as m
from woo2d365.sandbox import bc_postings as posted
from woo2d365.sandbox.bc_odata import ODataError, QueryOptions, Schema, parse_filter


@dataclass(frozen=True)
class EntitySet:
    """One entity set of the API: its name, entity type, schema, default order, BC table."""

    name: str
    entity: str  # OData entity type name (Microsoft.NAV.<entity>)
    schema: Schema
    default_order: str
    table: str  # BC table caption for "does not exist" messages


SETS: dict[str, EntitySet] = {
    "companies": EntitySet("companies", "company", m.COMPANY_SCHEMA, "name", "Company"),
    "items": EntitySet("items", "item", m.ITEM_SCHEMA, "number", "Item"),
    "customers": EntitySet("customers", "customer", m.CUSTOMER_SCHEMA, "number", "Customer"),
    "salesOrders": EntitySet(
        "salesOrders", "salesOrder", m.ORDER_SCHEMA, "number", "Sales Order Entity Buffer"
    ),
    "salesOrderLines": EntitySet(
        "salesOrderLines",
        "salesOrderLine",
        m.LINE_SCHEMA,
        "sequence",
        "Sales Invoice Line Aggregate",
    ),
    "accounts": EntitySet("accounts", "account", m.ACCOUNT_SCHEMA, "number", "G/L Account"),
    # -- credit memos (refunds) --
    "salesCreditMemos": EntitySet(
        "salesCreditMemos",
        "salesCreditMemo",
        cm.CREDIT_MEMO_SCHEMA,
        "number",
        "Sales Cr. Memo Entity Buffer",
    ),
    "salesCreditMemoLines": EntitySet(
        "salesCreditMemoLines",
        "salesCreditMemoLine",
        cm.CREDIT_MEMO_LINE_SCHEMA,
        "sequence",
        "Sales Invoice Line Aggregate",
    ),
    "countriesRegions": EntitySet(
        "countriesRegions", "countryRegion", m.COUNTRY_SCHEMA, "code", "Country/Region"
    ),
    "taxGroups": EntitySet("taxGroups", "taxGroup", m.TAX_GROUP_SCHEMA, "code", "Tax Group"),
    # -- posted documents (bc_postings) --
    "salesShipments": EntitySet(
        "salesShipments", "salesShipment", posted.SHIPMENT_SCHEMA, "number", "Sales Shipment Header"
    ),
    "salesShipmentLines": EntitySet(
        "salesShipmentLines",
        "salesShipmentLine",
        posted.SHIPMENT_LINE_SCHEMA,
        "documentNo",
        "Sales Shipment Line",
    ),
    "salesInvoices": EntitySet(
        "salesInvoices",
        "salesInvoice",
        posted.INVOICE_SCHEMA,
        "number",
        "Sales Invoice Entity Aggregate",
    ),
}
# The custom API page with shipping agent and tracking number (a per-tenant extension).
TRACKING_SET = EntitySet(
    "tracking", "postedShipmentTracking", posted.TRACKING_SCHEMA, "number", "Sales Shipment Header"
)
READ_ONLY_SETS = frozenset({"salesShipments", "salesShipmentLines", "taxGroups"})
# Entity sets BC has that this emulator does not serve: a 501, so nobody mistakes it for BC.
UNSERVED_SETS = frozenset(
    {
        "salesQuotes",
        "vendors",
        "purchaseInvoices",
        "currencies",
        "paymentTerms",
        "paymentMethods",
        "shipmentMethods",
        "itemCategories",
        "unitsOfMeasure",
        "dimensions",
        "dimensionValues",
        "employees",
        "journals",
        "taxAreas",
        "generalLedgerEntries",
        "contacts",
        "locations",
        "itemVariants",
        "customerPaymentJournals",
        "projects",
        "bankAccounts",
        "timeRegistrationEntries",
    }
)


def segment_not_found(segment: str) -> ODataError:
    return ODataError(
        404, "BadRequest_ResourceNotFound", f"Resource not found for the segment '{segment}'."
    )


def check_depth(segments: Sequence[tuple[str, str | None]]) -> None:
    """An entity set, one entity and one navigation below it: no deeper path is served."""
    if len(segments) > 2:
        raise segment_not_found(segments[2][0])


def served_set(name: str) -> EntitySet:
    """The entity set below a company; 501 for one BC has but the emulator does not serve."""
    if name not in SETS or name == "companies":
        if name in UNSERVED_SETS:
            raise ODataError(
                501,
                "BadRequest_MethodNotImplemented",
                f"The entity set '{name}' is not served by the sandbox emulator.",
            )
        raise segment_not_found(name)
    return SETS[name]


def require_document_filter(options: QueryOptions, spec: EntitySet, message: str) -> None:
    """Document lines are listed only with a ``$filter`` on ``documentId`` or ``id``."""
    flt = options.options.get("$filter")
    fields = parse_filter(flt, spec.schema, spec.entity).fields if flt else frozenset()
    if not fields & {"documentId", "id"}:
        raise m.app_error(message)


Rows = tuple[list[dict[str, Any]], dict[str, Any]]


def _item_rows(company: m.Company, postings: posted.Postings) -> Rows:
    return list(company.items.values()), {
        "number": lambda v: [company.items[i] for i in [company.item_by_number.get(v)] if i]
    }


def _customer_rows(company: m.Company, postings: posted.Postings) -> Rows:
    return list(company.customers.values()), {
        "number": lambda v: [
            company.customers[i] for i in [company.customer_by_number.get(v)] if i
        ],
        "email": lambda v: [company.customers[i] for i in company.customer_by_email.get(v, [])],
    }


def _order_rows(company: m.Company, postings: posted.Postings) -> Rows:
    return list(company.orders.values()), {
        "externalDocumentNumber": lambda v: [
            company.orders[i] for i in company.order_by_ext.get(v, [])
        ],
        "number": lambda v: [company.orders[i] for i in [company.order_by_number.get(v)] if i],
    }


# The rows of each entity set below a company, with the indexes that narrow an ``eq`` filter.
ROW_SOURCES: dict[str, Callable[[m.Company, posted.Postings], Rows]] = {
    "items": _item_rows,
    "customers": _customer_rows,
    "salesOrders": _order_rows,
    "salesOrderLines": lambda c, p: ([line for lines in c.lines.values() for line in lines], {}),
    "accounts": lambda c, p: (list(c.accounts.values()), {}),
    "countriesRegions": lambda c, p: (list(c.countries.values()), {}),
    "taxGroups": lambda c, p: (c.tax_groups(), {}),
    "salesShipments": lambda c, p: (list(p.shipments.values()), {}),
    "salesShipmentLines": lambda c, p: (p.all_shipment_lines(), {}),
    "salesInvoices": lambda c, p: (list(p.invoices.values()), {}),
}
