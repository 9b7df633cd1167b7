"""The data and write rules of the Finance & Operations emulator (``docs/systems.md``, F&O).

Rows are plain dicts with F&O's field names. Company-specific entities carry ``dataAreaId``
(lower case); ``LegalEntities`` and ``AddressCountryRegions`` are shared. Every create goes
through F&O's order — unsupplied fields get defaults, then field validation, then the write — and
a refusal is an ``AxODataWriteException`` whose Infolog names the problem. Field lengths
(UNCONFIRMED in the reference) are enforced as write errors, never silently cut.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from woo2d365.sandbox.fo_odata import Field, FoError, Row, Schema, write_error

S, D, INT, T = Field("string"), Field("decimal"), Field("int"), Field("datetime")
NOYES = Field("enum", "NoYes")
EMPTY_DATE = "1900-01-01T12:00:00Z"
WRITE_EXCEPTION_STATUS = 500
"""Status of an ``AxODataWriteException`` inside a changeset (400 outside one)."""


def _s(length: int) -> Field:
    return Field("string", length=length)


ENTITY_SETS: dict[str, tuple[str, str, tuple[str, ...], Schema]] = {
    # collection: (public entity type, AOT name, key, schema)
    "LegalEntities": (
        "LegalEntity",
        "OMLegalEntity",
        ("LegalEntityId",),
        {"LegalEntityId": S, "Name": S},
    ),
    "AddressCountryRegions": (
        "AddressCountryRegion",
        "LogisticsAddressCountryRegionEntity",
        ("CountryRegion",),
        {"CountryRegion": S, "ISOcode": S, "ShortName": S},
    ),
    "CustomerGroups": (
        "CustomerGroup",
        "CustCustomerGroupEntity",
        ("dataAreaId", "CustomerGroupId"),
        {"dataAreaId": S, "CustomerGroupId": S, "Description": S},
    ),
    "ReleasedProductsV2": (
        "ReleasedProductV2",
        "EcoResReleasedProductV2Entity",
        ("dataAreaId", "ItemNumber"),
        {
            "dataAreaId": S,
            "ItemNumber": S,
            "ProductNumber": S,
            "ProductType": Field("enum", "EcoResProductType"),
            "ProductSubType": Field("enum", "EcoResProductSubtype"),
            "SearchName": S,
            "ProductSearchName": S,
            "SalesUnitSymbol": S,
            "InventoryUnitSymbol": S,
            "SalesPrice": D,
            "SalesPriceQuantity": D,
            "StorageDimensionGroupName": S,
            "ItemModelGroupId": S,
            "SalesSalesTaxItemGroupCode": S,
        },
    ),
    "ProductDefaultOrderSettings": (
        "ProductDefaultOrderSetting",
        "InventItemOrderSetupDefaultEntity",
        ("dataAreaId", "ItemNumber"),
        {
            "dataAreaId": S,
            "ItemNumber": S,
            "IsSalesProcessingStopped": NOYES,
            "IsInventoryProcessingStopped": NOYES,
            "IsProcurementProcessingstopped": NOYES,
            "SalesSiteId": S,
            "SalesWarehouseId": S,
        },
    ),
    "CustomersV3": (
        "CustomerV3",
        "CustCustomerV3Entity",
        ("dataAreaId", "CustomerAccount"),
        {
            "dataAreaId": S,
            "CustomerAccount": _s(20),
            "CustomerGroupId": _s(10),
            "SalesCurrencyCode": _s(3),
            "PartyType": S,
            "PartyNumber": S,
            "OrganizationName": _s(100),
            "PersonFirstName": _s(25),
            "PersonMiddleName": _s(25),
            "PersonLastName": _s(25),
            "NameAlias": _s(20),
            "PrimaryContactEmail": _s(255),
            "PrimaryContactPhone": _s(255),
            "AddressDescription": _s(60),
            "AddressStreet": _s(250),
            "AddressCity": _s(60),
            "AddressZipCode": _s(10),
            "AddressState": _s(10),
            "AddressCounty": _s(10),
            "AddressCountryRegionId": _s(10),
            "AddressLocationRoles": S,
            "LanguageId": _s(7),
            "OnHoldStatus": Field("enum", "CustVendorBlocked"),
            "InvoiceAccount": _s(20),
        },
    ),
    "SalesOrderHeadersV2": (
        "SalesOrderHeaderV2",
        "SalesOrderHeaderV2Entity",
        ("dataAreaId", "SalesOrderNumber"),
        {
            "dataAreaId": S,
            "SalesOrderNumber": _s(20),
            "OrderingCustomerAccountNumber": _s(20),
            "InvoiceCustomerAccountNumber": _s(20),
            "CurrencyCode": _s(3),
            "CustomersOrderReference": _s(60),
            "CustomerRequisitionNumber": _s(20),
            "RequestedShippingDate": T,
            "RequestedReceiptDate": T,
            "LanguageId": _s(7),
            "SalesTaxGroupCode": _s(10),
            "ArePricesIncludingSalesTax": NOYES,
            "Email": _s(255),
            "SalesOrderName": _s(100),
            "IsDeliveryAddressOrderSpecific": NOYES,
            "DeliveryAddressName": _s(100),
            "DeliveryAddressDescription": _s(60),
            "DeliveryAddressStreet": _s(250),
            "DeliveryAddressCity": _s(60),
            "DeliveryAddressZipCode": _s(10),
            "DeliveryAddressStateId": _s(10),
            "DeliveryAddressCountyId": _s(10),
            "DeliveryAddressCountryRegionId": _s(10),
            "SalesOrderStatus": Field("enum", "SalesStatus"),
            "SalesOrderProcessingStatus": Field("enum", "SalesOrderProcessingStatus"),
            "IsSalesProcessingStopped": NOYES,
            "OrderTotalAmount": D,
            "OrderTotalTaxAmount": D,
            "TotalDiscountAmount": D,
            "AreTotalsCalculated": NOYES,
            "OrderCreationDateTime": T,
            "SkipCreateAutoCharges": NOYES,
        },
    ),
    "SalesOrderLines": (
        "SalesOrderLine",
        "SalesOrderLineV2Entity",
        ("dataAreaId", "InventoryLotId"),
        {
            "dataAreaId": S,
            "InventoryLotId": S,
            "SalesOrderNumber": _s(20),
            "LineNumber": D,
            "LineCreationSequenceNumber": INT,
            "CustomersLineNumber": INT,
            "OrderLineReference": S,
            "ItemNumber": _s(20),
            "LineDescription": _s(1000),
            "OrderedSalesQuantity": D,
            "SalesUnitSymbol": _s(10),
            "SalesPrice": D,
            "SalesPriceQuantity": D,
            "LineDiscountAmount": D,
            "LineDiscountPercentage": D,
            "LineAmount": D,
            "ShippingSiteId": _s(10),
            "ShippingWarehouseId": _s(10),
            "RequestedShippingDate": T,
            "SalesOrderLineStatus": Field("enum", "SalesStatus"),
        },
    ),
}
WRITABLE = frozenset({"CustomersV3", "SalesOrderHeadersV2", "SalesOrderLines"})
READ_ONLY = {
    "SalesOrderHeadersV2": frozenset(
        {
            "SalesOrderStatus",
            "SalesOrderProcessingStatus",
            "OrderTotalAmount",
            "OrderTotalTaxAmount",
            "TotalDiscountAmount",
            "AreTotalsCalculated",
            "OrderCreationDateTime",
        }
    ),
    "SalesOrderLines": frozenset({"InventoryLotId", "LineAmount", "LineCreationSequenceNumber"}),
    "CustomersV3": frozenset({"PartyNumber"}),
}


@dataclass
class Company:
    """One legal entity: its setup, number sequences and records."""

    data_area_id: str
    name: str
    manual_sales_numbers: bool = True  # "allow user changes" on the sales-order sequence
    currencies: set[str] = field(default_factory=lambda: {"EUR", "USD", "GBP"})
    rows: dict[str, dict[tuple[str, ...], Row]] = field(default_factory=dict)
    counters: dict[str, itertools.count[int]] = field(default_factory=dict)

    def next_number(self, sequence: str) -> str:
        counter = self.counters.setdefault(sequence, itertools.count(1))
        return f"{self.data_area_id.upper()}-{next(counter):06d}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _today_noon() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT12:00:00Z")


def _money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _check_property(
    collection: str, entity: str, aot: str, schema: Schema, name: str, value: Any
) -> None:
    """One property of a create body: known, writable, of its type and length."""
    if name not in schema:
        raise FoError(
            400,
            f"The property '{name}' does not exist on type "
            f"'Microsoft.Dynamics.DataEntities.{entity}'. Make sure to only use property "
            "names that are defined by the type.",
        )
    if name in READ_ONLY.get(collection, ()):
        raise write_error(aot, [f"Error: Field '{name}' cannot be edited"])
    spec = schema[name]
    if value is None:
        raise FoError(400, f"A null value was found for the property named '{name}'.")
    if spec.type in ("string", "enum", "datetime") and not isinstance(value, str):
        raise FoError(400, f"Cannot convert the literal '{value}' to the type Edm.String.")
    if spec.type == "decimal" and isinstance(value, bool | str):
        raise FoError(400, "Cannot convert a primitive value to the expected type 'Edm.Decimal'.")
    if spec.type == "enum" and spec.enum == "NoYes" and value not in ("Yes", "No"):
        raise FoError(400, f"The value '{value}' is not a member of enum type NoYes for '{name}'.")
    if spec.length is not None and isinstance(value, str) and len(value) > spec.length:
        raise write_error(
            aot,
            [
                f"Warning: The value in field '{name}' is {len(value)} characters long; "
                f"at most {spec.length} are allowed"
            ],
        )


class FoData:
    """Every legal entity and shared table; thread-safe through one lock."""

    def __init__(self, default_company: str) -> None:
        self.lock = threading.RLock()
        self.companies: dict[str, Company] = {}
        self.countries: dict[str, Row] = {}  # CountryRegion -> row
        self.default_company = default_company.lower()
        self._undo: list[tuple[str, str, tuple[str, ...]]] | None = None

    # -- setup --------------------------------------------------------------------------------
    def company(self, data_area_id: str) -> Company:
        return self.companies[data_area_id.lower()]

    def add_company(self, data_area_id: str, name: str, *, manual_numbers: bool = True) -> Company:
        company = Company(data_area_id.lower(), name, manual_sales_numbers=manual_numbers)
        self.companies[company.data_area_id] = company
        return company

    def add_country(self, region: str, iso: str, name: str = "") -> None:
        self.countries[region] = {"CountryRegion": region, "ISOcode": iso, "ShortName": name}

    def put(self, collection: str, company: Company, row: Row) -> Row:
        row["dataAreaId"] = company.data_area_id
        key = tuple(str(row[k]).casefold() for k in ENTITY_SETS[collection][2])
        company.rows.setdefault(collection, {})[key] = row
        if self._undo is not None:
            self._undo.append((collection, company.data_area_id, key))
        return row

    # -- reads --------------------------------------------------------------------------------
    def rows(self, collection: str, companies: list[str] | None) -> list[Row]:
        """Rows of a set: shared sets whole, company sets of ``companies`` (None: all)."""
        if collection == "LegalEntities":
            return [
                {"LegalEntityId": c.data_area_id.upper(), "Name": c.name}
                for c in self.companies.values()
            ]
        if collection == "AddressCountryRegions":
            return list(self.countries.values())
        found: list[Row] = []
        for company in self.companies.values():
            if companies is None or company.data_area_id in companies:
                found.extend(company.rows.get(collection, {}).values())
        return found

    def find(self, collection: str, company: Company, *key: str) -> Row | None:
        wanted = (company.data_area_id.casefold(), *(k.casefold() for k in key))
        return company.rows.get(collection, {}).get(wanted)

    # -- transactions -------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All-or-nothing: a failure removes every row inserted inside the block."""
        with self.lock:
            outer = self._undo
            self._undo = []
            try:
                yield
            except BaseException:
                for collection, area, key in reversed(self._undo):
                    self.companies[area].rows.get(collection, {}).pop(key, None)
                self._undo = outer
                raise
            done, self._undo = self._undo, outer
            if outer is not None:
                outer.extend(done)

    # -- creates ------------------------------------------------------------------------------
    def create(self, collection: str, body: dict[str, Any]) -> Row:
        """Insert one record the way the entity does; :class:`FoError` when refused."""
        if collection not in WRITABLE:
            raise FoError(405, f"The entity set '{collection}' does not support inserts.")
        entity, aot, _key, schema = ENTITY_SETS[collection]
        for name, value in body.items():
            if not name.startswith("@odata."):
                _check_property(collection, entity, aot, schema, name, value)
        area = str(body.get("dataAreaId") or self.default_company).lower()
        company = self.companies.get(area)
        if company is None:
            raise write_error(aot, [f"Error: Company '{area}' does not exist"])
        creators = {"CustomersV3": self._customer, "SalesOrderHeadersV2": self._header}
        with self.lock:
            return creators.get(collection, self._line)(company, aot, dict(body))

    def _fk(self, aot: str, value: str, label: str, table: str, extra: str) -> FoError:
        return write_error(
            aot,
            [
                f"Warning: The value '{value}' in field '{label}' is not found in the related "
                f"table '{table}'.",
                f"Warning: validateField failed on field '{aot}.{extra}'.",
            ],
        )

    def _country(self, company: Company, aot: str, value: str, label: str, extra: str) -> None:
        if value and value.upper() not in {c.upper() for c in self.countries}:
            raise self._fk(aot, value, label, "Country/region", extra)

    def _customer(self, company: Company, aot: str, body: Row) -> Row:
        group = str(body.get("CustomerGroupId") or "")
        if not group:
            raise write_error(aot, ["Warning: Field 'Customer group' must be filled in."])
        if self.find("CustomerGroups", company, group) is None:
            raise self._fk(aot, group, "Customer group", "Customer groups", "CustomerGroupId")
        currency = str(body.get("SalesCurrencyCode") or "")
        if not currency:
            raise write_error(aot, ["Warning: Field 'Currency' must be filled in."])
        if currency.upper() not in company.currencies:
            raise self._fk(aot, currency, "Currency", "Currency", "SalesCurrencyCode")
        party = str(body.setdefault("PartyType", "Organization"))
        if party not in ("Organization", "Person"):
            raise write_error(aot, [f"Error: '{party}' is not a valid party type"])
        if party == "Organization" and not body.get("OrganizationName"):
            raise write_error(aot, ["Warning: Field 'Name' must be filled in."])
        if party == "Person" and not any(
            body.get(k) for k in ("PersonFirstName", "PersonMiddleName", "PersonLastName")
        ):
            raise write_error(aot, ["Warning: Field 'First name' must be filled in."])
        if body.get("AddressDescription") and not body.get("AddressCountryRegionId"):
            raise write_error(aot, ["Warning: Field 'Country/region' must be filled in."])
        self._country(
            company,
            aot,
            str(body.get("AddressCountryRegionId") or ""),
            "Country/region",
            "AddressCountryRegionId",
        )
        account = str(body.get("CustomerAccount") or "")
        if account:
            raise write_error(
                aot,
                [
                    "Error: Number sequence Cust_1 is not set up for manual numbers: the "
                    "customer account cannot be chosen"
                ],
            )
        account = company.next_number("customer")
        name = str(body.get("OrganizationName") or "") or " ".join(
            str(body.get(k) or "")
            for k in ("PersonFirstName", "PersonMiddleName", "PersonLastName")
            if body.get(k)
        )
        row: Row = {key: "" for key, spec in ENTITY_SETS["CustomersV3"][3].items()}
        row.update(body)
        row.update(
            CustomerAccount=account,
            PartyNumber=company.next_number("party"),
            NameAlias=name[:20],
            OnHoldStatus=str(body.get("OnHoldStatus") or "No"),
            LanguageId=str(body.get("LanguageId") or "en-us"),
        )
        return self.put("CustomersV3", company, row)

    def _header(self, company: Company, aot: str, body: Row) -> Row:
        customer_account = str(body.get("OrderingCustomerAccountNumber") or "")
        if not customer_account:
            raise write_error(aot, ["Warning: Field 'Customer account' must be filled in."])
        customer = self.find("CustomersV3", company, customer_account)
        if customer is None:
            raise self._fk(
                aot,
                customer_account,
                "Customer account",
                "Customers",
                "OrderingCustomerAccountNumber",
            )
        if customer.get("OnHoldStatus") not in ("No", "", None):
            raise write_error(
                aot,
                [
                    f"Warning: Customer {customer_account} is stopped for "
                    f"{customer['OnHoldStatus']}."
                ],
            )
        currency = str(body.get("CurrencyCode") or customer["SalesCurrencyCode"])
        if currency.upper() not in company.currencies:
            raise self._fk(aot, currency, "Currency", "Currency", "CurrencyCode")
        self._country(
            company,
            aot,
            str(body.get("DeliveryAddressCountryRegionId") or ""),
            "Country/region",
            "DeliveryAddressCountryRegionId",
        )
        number = str(body.get("SalesOrderNumber") or "")
        if number:
            if not company.manual_sales_numbers:
                raise write_error(
                    aot,
                    [
                        "Error: Number sequence SalesOrder does not allow the number to be "
                        "changed manually"
                    ],
                )
            if self.find("SalesOrderHeadersV2", company, number) is not None:
                raise write_error(
                    aot,
                    [
                        f"Info: Cannot create a record in Sales orders (SalesTable). Sales "
                        f"order: {number}, {customer_account}.\nThe record already exists."
                    ],
                )
        else:
            number = company.next_number("salesorder")
        row: Row = {key: "" for key, spec in ENTITY_SETS["SalesOrderHeadersV2"][3].items()}
        row.update(
            InvoiceCustomerAccountNumber=customer.get("InvoiceAccount") or customer_account,
            CurrencyCode=currency,
            LanguageId="en-US",
            ArePricesIncludingSalesTax="No",
            IsDeliveryAddressOrderSpecific="No",
            IsSalesProcessingStopped="No",
            SalesOrderName=customer.get("OrganizationName") or customer.get("NameAlias") or "",
            RequestedShippingDate=_today_noon(),
            RequestedReceiptDate=_today_noon(),
            SkipCreateAutoCharges="Yes",
        )
        row.update(body)
        row.update(
            SalesOrderNumber=number,
            SalesOrderStatus="None",
            SalesOrderProcessingStatus="Active",
            OrderTotalAmount=Decimal(0),
            OrderTotalTaxAmount=Decimal(0),
            TotalDiscountAmount=Decimal(0),
            AreTotalsCalculated="No",
            OrderCreationDateTime=_now(),
        )
        return self.put("SalesOrderHeadersV2", company, row)

    def _line(self, company: Company, aot: str, body: Row) -> Row:
        number = str(body.get("SalesOrderNumber") or "")
        if not number:
            raise write_error(aot, ["Warning: Field 'Sales order' must be filled in."])
        header = self.find("SalesOrderHeadersV2", company, number)
        if header is None:
            raise self._fk(aot, number, "Sales order", "Sales orders", "SalesOrderNumber")
        item_number = str(body.get("ItemNumber") or "")
        if not item_number:
            raise write_error(aot, ["Warning: Field 'Item number' must be filled in."])
        product = self.find("ReleasedProductsV2", company, item_number)
        if product is None or product["ItemNumber"] != item_number:
            # Exact: the reference warns that item numbers may carry leading spaces.
            raise self._fk(aot, item_number, "Item number", "Released products", "ItemNumber")
        settings = self.find("ProductDefaultOrderSettings", company, item_number) or {}
        if settings.get("IsSalesProcessingStopped") == "Yes":
            raise write_error(aot, [f"Warning: Item {item_number} is stopped for sales."])
        quantity = Decimal(str(body.get("OrderedSalesQuantity", 1)))
        price = Decimal(str(body.get("SalesPrice", product["SalesPrice"])))
        per = Decimal(str(body.get("SalesPriceQuantity", product["SalesPriceQuantity"] or 1)))
        if per <= 0:
            raise write_error(aot, ["Warning: Price unit must be greater than zero."])
        discount = Decimal(str(body.get("LineDiscountAmount", 0)))
        percent = Decimal(str(body.get("LineDiscountPercentage", 0)))
        amount = _money(
            _money(quantity * price / per - quantity * discount) * (1 - percent / Decimal(100))
        )
        existing = [
            r
            for r in company.rows.get("SalesOrderLines", {}).values()
            if r["SalesOrderNumber"].casefold() == number.casefold()
        ]
        line_number = Decimal(str(body.get("LineNumber", len(existing) + 1)))
        row: Row = {key: "" for key, spec in ENTITY_SETS["SalesOrderLines"][3].items()}
        row.update(
            SalesUnitSymbol=product["SalesUnitSymbol"],
            RequestedShippingDate=header["RequestedShippingDate"],
            LineDescription=product["SearchName"],
            CustomersLineNumber=0,
            LineDiscountAmount=Decimal(0),
            LineDiscountPercentage=Decimal(0),
        )
        row.update(body)
        row.update(
            SalesOrderNumber=header["SalesOrderNumber"],
            InventoryLotId=company.next_number("inventlot"),
            OrderedSalesQuantity=quantity,
            SalesPrice=price,
            SalesPriceQuantity=per,
            LineAmount=amount,
            LineNumber=line_number,
            LineCreationSequenceNumber=len(existing) + 1,
            SalesOrderLineStatus="Backorder",
        )
        header["SalesOrderStatus"] = "Backorder"
        return self.put("SalesOrderLines", company, row)
