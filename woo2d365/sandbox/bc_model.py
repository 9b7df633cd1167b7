"""Business Central data and rules for the emulator: companies, items, G/L accounts, customers,
the binding of request bodies, and the validations the API pages share.

Follows ``docs/systems.md`` (B2, B3) and the API pages of Business Central
(``APIV2 - Customers`` 30009): fields are validated in page order, Code fields are trimmed and
upper-cased, lengths are enforced. Sales orders and their lines are in ``bc_sales_orders``.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from woo2d365.sandbox.bc_odata import EDM, FieldSpec, ODataError, Schema

ZERO_GUID = "00000000-0000-0000-0000-000000000000"
BLANK_DATE = date(1, 1, 1)
LCY_CODE = "EUR"
CENT = Decimal("0.01")
UNIT_AMOUNT_PRECISION = Decimal("0.00001")
QUANTITY_PRECISION = Decimal("0.00001")
GUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EMAIL_RE = re.compile(
    r"^[\w!#$%&'*+/=?^`{|}~-]+(?:\.[\w!#$%&'*+/=?^`{|}~-]+)*"
    r"@(?:[^\W_](?:[\w-]*[^\W_])?\.)+[^\W\d_]{2,}$"
)

# Amount rounding precision per currency (LCY and everything else: 0.01).
CURRENCY_ROUNDING: dict[str, Decimal] = {
    "USD": CENT,
    "GBP": CENT,
    "JPY": Decimal("1"),
    "CHF": CENT,
    "DKK": CENT,
    "SEK": CENT,
    "PLN": CENT,
    "NOK": CENT,
    "CZK": CENT,
}
COUNTRY_NAMES: dict[str, str] = {
    "NL": "Netherlands",
    "DE": "Germany",
    "BE": "Belgium",
    "FR": "France",
    "AT": "Austria",
    "GB": "Great Britain",
    "US": "USA",
    "ES": "Spain",
    "IT": "Italy",
    "DK": "Denmark",
    "SE": "Sweden",
    "PL": "Poland",
    "CH": "Switzerland",
    "LU": "Luxembourg",
    "IE": "Ireland",
    "PT": "Portugal",
    "FI": "Finland",
    "NO": "Norway",
    "CZ": "Czech Republic",
    "CA": "Canada",
}
UNITS_OF_MEASURE = ("PCS", "BOX", "HOUR", "KG", "PACK", "SET")


def new_guid() -> str:
    """A fresh lower-case GUID, as BC prints SystemIds."""
    return str(uuid.uuid4())


def now_ms() -> datetime:
    """Now in UTC, truncated to the millisecond BC stores."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def round_amount(value: Decimal, precision: Decimal = CENT) -> Decimal:
    """AL ``Round(x, precision)``: nearest, halves away from zero."""
    return (value / precision).quantize(Decimal("1"), rounding=ROUND_HALF_UP) * precision


def format_datetime(value: datetime) -> str:
    """``2025-03-01T10:11:12.123Z``."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def app_error(
    message: str, code: str = "Application_DialogException", status: int = 400
) -> ODataError:
    """An AL ``Error()`` raised while validating."""
    return ODataError(status, code, message)


def bad_request(message: str) -> ODataError:
    """The OData layer could not bind the request body."""
    return ODataError(400, "BadRequest", message)


def table_relation_error(field_caption: str, table: str, value: str, related: str) -> ODataError:
    """``Internal_InvalidTableRelation`` as BC words it."""
    return ODataError(
        400,
        "Internal_InvalidTableRelation",
        f"The field {field_caption} of table {table} contains a value ({value}) that cannot be "
        f"found in the related table ({related}).",
    )


def record_not_found(table: str, key: str, value: str) -> ODataError:
    """``Internal_RecordNotFound`` (a failed ``Get`` without ``if``)."""
    return ODataError(
        400,
        "Internal_RecordNotFound",
        f"The {table} does not exist. Identification fields and values: {key}='{value}'",
    )


# ---------------------------------------------------------------------------------------------
# schemas (page field order matters: fields are validated in this order)


def _f(
    type_: str, length: int | None = None, *, ro: bool = False, enum: tuple[str, ...] = ()
) -> FieldSpec:
    return FieldSpec(type_, length, ro, enum)


COMPANY_SCHEMA: Schema = {
    "id": _f("guid", ro=True),
    "systemVersion": _f("string", ro=True),
    "timestamp": _f("int", ro=True),
    "name": _f("string", 30, ro=True),
    "displayName": _f("string", 250, ro=True),
    "businessProfileId": _f("string", 250, ro=True),
    "systemCreatedAt": _f("datetime", ro=True),
    "systemCreatedBy": _f("guid", ro=True),
    "systemModifiedAt": _f("datetime", ro=True),
    "systemModifiedBy": _f("guid", ro=True),
}
ITEM_TYPES = ("Inventory", "Service", "Non_x002D_Inventory")
ITEM_SCHEMA: Schema = {
    "id": _f("guid", ro=True),
    "number": _f("code", 20),
    "displayName": _f("string", 100),
    "displayName2": _f("string", 50),
    "type": _f("enum", enum=ITEM_TYPES),
    "itemCategoryId": _f("guid"),
    "itemCategoryCode": _f("code", 20),
    "blocked": _f("bool"),
    "gtin": _f("code", 14),
    "inventory": _f("decimal", ro=True),
    "unitPrice": _f("decimal"),
    "priceIncludesTax": _f("bool"),
    "unitCost": _f("decimal"),
    "taxGroupId": _f("guid"),
    "taxGroupCode": _f("code", 20),
    "baseUnitOfMeasureId": _f("guid"),
    "baseUnitOfMeasureCode": _f("code", 10),
    "generalProductPostingGroupId": _f("guid"),
    "generalProductPostingGroupCode": _f("code", 20),
    "inventoryPostingGroupId": _f("guid"),
    "inventoryPostingGroupCode": _f("code", 20),
    "lastModifiedDateTime": _f("datetime", ro=True),
}
ACCOUNT_CATEGORIES = (
    "_x0020_",
    "Assets",
    "Liabilities",
    "Equity",
    "Income",
    "CostOfGoodsSold",
    "Expense",
)
ACCOUNT_SCHEMA: Schema = {
    "id": _f("guid", ro=True),
    "number": _f("code", 20),
    "displayName": _f("string", 100),
    "category": _f("enum", enum=ACCOUNT_CATEGORIES),
    "subCategory": _f("string", 80),
    "blocked": _f("bool"),
    "accountType": _f(
        "enum", enum=("Posting", "Heading", "Total", "Begin_x002D_Total", "End_x002D_Total")
    ),
    "directPosting": _f("bool"),
    "netChange": _f("decimal", ro=True),
    "lastModifiedDateTime": _f("datetime", ro=True),
}
COUNTRY_SCHEMA: Schema = {
    "id": _f("guid", ro=True),
    "code": _f("code", 10),
    "displayName": _f("string", 50),
    "addressFormat": _f("string"),
    "lastModifiedDateTime": _f("datetime", ro=True),
}
TAX_GROUP_SCHEMA: Schema = {  # page "APIV2 - Tax Groups": VAT Prod. Posting Groups in VAT countries
    "id": _f("guid", ro=True),
    "code": _f("code", 20),
    "displayName": _f("string", 100),
    "taxType": _f("string", ro=True),
    "lastModifiedDateTime": _f("datetime", ro=True),
}
CUSTOMER_BLOCKED = ("_x0020_", "Ship", "Invoice", "All")
CUSTOMER_SCHEMA: Schema = {
    "id": _f("guid", ro=True),
    "number": _f("code", 20),
    "displayName": _f("string", 100),
    "type": _f("enum", enum=("Company", "Person")),
    "addressLine1": _f("string", 100),
    "addressLine2": _f("string", 50),
    "city": _f("string", 30),
    "state": _f("string", 30),
    "country": _f("code", 10),
    "postalCode": _f("code", 20),
    "phoneNumber": _f("string", 30),
    "email": _f("string", 80),
    "website": _f("string", 80),
    "taxLiable": _f("bool"),
    "taxAreaId": _f("guid"),
    "taxAreaDisplayName": _f("string", ro=True),
    "taxRegistrationNumber": _f("string", 20),
    "currencyId": _f("guid"),
    "currencyCode": _f("code", 10),
    "paymentTermsId": _f("guid"),
    "shipmentMethodId": _f("guid"),
    "paymentMethodId": _f("guid"),
    "blocked": _f("enum", enum=CUSTOMER_BLOCKED),
    "lastModifiedDateTime": _f("datetime", ro=True),
}
# Header fields that sales orders and credit memos share, in page order.
DOCUMENT_PARTIES: Schema = {
    "customerId": _f("guid"),
    "customerNumber": _f("code", 20),
    "customerName": _f("string", 100, ro=True),
    "billToName": _f("string", 100, ro=True),
    "billToCustomerId": _f("guid"),
    "billToCustomerNumber": _f("code", 20),
}
SELL_TO_AND_BILL_TO_ADDRESS: Schema = {
    "sellToAddressLine1": _f("string", 100),
    "sellToAddressLine2": _f("string", 50),
    "sellToCity": _f("string", 30),
    "sellToCountry": _f("code", 10),
    "sellToState": _f("string", 30),
    "sellToPostCode": _f("code", 20),
    "billToAddressLine1": _f("string", 100, ro=True),
    "billToAddressLine2": _f("string", 50, ro=True),
    "billToCity": _f("string", 30, ro=True),
    "billToCountry": _f("code", 10, ro=True),
    "billToState": _f("string", 30, ro=True),
    "billToPostCode": _f("code", 20, ro=True),
}
DIMENSIONS_AND_CURRENCY: Schema = {
    "shortcutDimension1Code": _f("code", 20),
    "shortcutDimension2Code": _f("code", 20),
    "currencyId": _f("guid"),
    "currencyCode": _f("code", 10),
}
DOCUMENT_TOTALS: Schema = {
    "discountAmount": _f("decimal"),
    "discountAppliedBeforeTax": _f("bool", ro=True),
    "totalAmountExcludingTax": _f("decimal", ro=True),
    "totalTaxAmount": _f("decimal", ro=True),
    "totalAmountIncludingTax": _f("decimal", ro=True),
}
DOCUMENT_CONTACT: Schema = {
    "phoneNumber": _f("string", 30),
    "email": _f("string", 80),
}
ORDER_STATUS = ("Draft", "In_x0020_Review", "Open")
ORDER_SCHEMA: Schema = {
    "id": _f("guid", ro=True),
    "number": _f("code", 20, ro=True),
    "externalDocumentNumber": _f("code", 35),
    "orderDate": _f("date"),
    "postingDate": _f("date"),
    **DOCUMENT_PARTIES,
    "shipToName": _f("string", 100),
    "shipToContact": _f("string", 100),
    **SELL_TO_AND_BILL_TO_ADDRESS,
    "shipToAddressLine1": _f("string", 100),
    "shipToAddressLine2": _f("string", 50),
    "shipToCity": _f("string", 30),
    "shipToCountry": _f("code", 10),
    "shipToState": _f("string", 30),
    "shipToPostCode": _f("code", 20),
    **DIMENSIONS_AND_CURRENCY,
    "pricesIncludeTax": _f("bool"),
    "paymentTermsId": _f("guid"),
    "shipmentMethodId": _f("guid"),
    "salesperson": _f("code", 20),
    "partialShipping": _f("bool"),
    "requestedDeliveryDate": _f("date"),
    **DOCUMENT_TOTALS,
    "fullyShipped": _f("bool", ro=True),
    "status": _f("enum", ro=True, enum=ORDER_STATUS),
    "lastModifiedDateTime": _f("datetime", ro=True),
    **DOCUMENT_CONTACT,
}
LINE_TYPES = ("Comment", "Account", "Item", "Resource", "Fixed_x0020_Asset", "Charge")
LINE_SCHEMA: Schema = {
    "id": _f("guid", ro=True),
    "documentId": _f("guid"),
    "sequence": _f("int"),
    "itemId": _f("guid"),
    "accountId": _f("guid"),
    "lineType": _f("enum", enum=LINE_TYPES),
    "lineObjectNumber": _f("code", 20),
    "description": _f("string", 100),
    "description2": _f("string", 50),
    "unitOfMeasureId": _f("guid"),
    "unitOfMeasureCode": _f("code", 10),
    "quantity": _f("decimal"),
    "unitPrice": _f("decimal"),
    "discountAmount": _f("decimal"),
    "discountPercent": _f("decimal"),
    "discountAppliedBeforeTax": _f("bool", ro=True),
    "amountExcludingTax": _f("decimal", ro=True),
    "taxCode": _f("code", 50),
    "taxPercent": _f("decimal", ro=True),
    "totalTaxAmount": _f("decimal", ro=True),
    "amountIncludingTax": _f("decimal", ro=True),
    "invoiceDiscountAllocation": _f("decimal", ro=True),
    "netAmount": _f("decimal", ro=True),
    "netTaxAmount": _f("decimal", ro=True),
    "netAmountIncludingTax": _f("decimal", ro=True),
    "shipmentDate": _f("date"),
    "shippedQuantity": _f("decimal", ro=True),
    "invoicedQuantity": _f("decimal", ro=True),
    "invoiceQuantity": _f("decimal"),
    "shipQuantity": _f("decimal"),
    "itemVariantId": _f("guid"),
    "locationId": _f("guid"),
}
# The navigation properties of a sales document header (orders, shipments, invoices).
DOCUMENT_NAVIGATIONS = (
    "customer",
    "currency",
    "paymentTerms",
    "shipmentMethod",
    "pdfDocument",
    "attachments",
    "documentAttachments",
    "dimensionSetLines",
)
# Navigation properties BC has but the emulator does not serve (a 501, not a fake 400).
UNSERVED_NAVIGATIONS: dict[str, tuple[str, ...]] = {
    "salesOrder": DOCUMENT_NAVIGATIONS,
    "salesOrderLine": ("item", "account", "location", "dimensionSetLines"),
    "customer": (
        "customerFinancialDetails",
        "picture",
        "defaultDimensions",
        "agedAccountsReceivable",
        "currency",
        "paymentTerms",
        "shipmentMethod",
        "paymentMethod",
        "contactsInformation",
    ),
    "item": (
        "itemCategory",
        "itemVariants",
        "picture",
        "defaultDimensions",
        "unitsOfMeasure",
        "inventoryPostingGroup",
        "generalProductPostingGroup",
    ),
    "account": (),
    "countryRegion": (),
    "company": ("items", "customers", "salesOrders", "accounts", "countriesRegions"),
}


# ---------------------------------------------------------------------------------------------
# binding JSON bodies (what the OData layer does before any AL code runs)


def _edm(spec: FieldSpec) -> str:
    return EDM[spec.type]


def _cannot_convert(spec: FieldSpec) -> ODataError:
    return bad_request(
        f"Cannot convert a primitive value to the expected type '{_edm(spec)}'. "
        "See the inner exception for more details."
    )


def _bind_string(name: str, spec: FieldSpec, value: Any, ieee754: bool) -> Any:
    if not isinstance(value, str):
        raise _cannot_convert(spec)
    return value


def _bind_enum(name: str, spec: FieldSpec, value: Any, ieee754: bool) -> Any:
    if not isinstance(value, str):
        raise _cannot_convert(spec)
    if value not in spec.enum:
        raise bad_request(
            f"Cannot convert the literal '{value}' to the expected type of the enum "
            f"property '{name}'. Valid values: {', '.join(spec.enum)}."
        )
    return value


def _bind_guid(name: str, spec: FieldSpec, value: Any, ieee754: bool) -> Any:
    if not isinstance(value, str) or not GUID_RE.match(value):
        raise bad_request(f"Cannot convert the literal '{value}' to the expected type 'Edm.Guid'.")
    return value.lower()


def _bind_date(name: str, spec: FieldSpec, value: Any, ieee754: bool) -> Any:
    invalid = bad_request(f"Cannot convert the literal '{value}' to the expected type 'Edm.Date'.")
    if not isinstance(value, str) or not _DATE_RE.match(value):
        raise invalid
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise invalid from None


def _bind_decimal(name: str, spec: FieldSpec, value: Any, ieee754: bool) -> Any:
    if isinstance(value, bool):
        raise _cannot_convert(spec)
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str) and ieee754:  # a string is a number with IEEE754Compatible=true
        try:
            value = Decimal(value)
        except InvalidOperation:
            raise _cannot_convert(spec) from None
    if not isinstance(value, Decimal) or not value.is_finite():
        raise _cannot_convert(spec)
    return value


def _bind_int(name: str, spec: FieldSpec, value: Any, ieee754: bool) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _cannot_convert(spec)
    if not -(2**31) <= value < 2**31:
        raise _cannot_convert(spec)
    return value


def _bind_bool(name: str, spec: FieldSpec, value: Any, ieee754: bool) -> Any:
    if not isinstance(value, bool):
        raise _cannot_convert(spec)
    return value


_BINDERS: dict[str, Callable[[str, FieldSpec, Any, bool], Any]] = {
    "string": _bind_string,
    "code": _bind_string,
    "enum": _bind_enum,
    "guid": _bind_guid,
    "date": _bind_date,
    "decimal": _bind_decimal,
    "int": _bind_int,
    "bool": _bind_bool,
}


def bind_value(name: str, spec: FieldSpec, value: Any, ieee754: bool) -> Any:
    """Convert one JSON value to the field's type, as strictly as BC's OData reader."""
    if value is None:
        edm = _edm(spec)
        raise bad_request(
            f"A null value was found for the property named '{name}', which has the expected "
            f"type '{edm}[Nullable=False]'. The expected type '{edm}[Nullable=False]' does not "
            "allow null values."
        )
    if isinstance(value, (dict, list)):
        raise bad_request("Invalid Request Body")
    binder = _BINDERS.get(spec.type)
    if binder is None:
        raise _cannot_convert(spec)  # datetime fields are all read-only
    return binder(name, spec, value, ieee754)


def bind_body(
    body: Mapping[str, Any],
    schema: Schema,
    entity: str,
    ieee754: bool,
    navigations: Iterable[str] = (),
) -> dict[str, Any]:
    """Bind every property of a JSON object; unknown properties are a 400."""
    navs = set(navigations)
    bound: dict[str, Any] = {}
    for name, value in body.items():
        if name.startswith("@odata.") or name.startswith("@"):
            continue  # instance annotations are legal OData JSON and carry no data
        if name in navs:
            bound[name] = value
            continue
        spec = schema.get(name)
        if spec is None:
            raise bad_request(
                f"Invalid Request Body: the property '{name}' does not exist on type "
                f"'Microsoft.NAV.{entity}'. Make sure to only use property names that are "
                "defined by the type."
            )
        bound[name] = bind_value(name, spec, value, ieee754)
    return bound


def check_read_only(name: str, spec: FieldSpec) -> None:
    """Setting a non-editable control is refused by the page."""
    if spec.read_only:
        raise ODataError(400, "BadRequest_InvalidOperation", f"Control '{name}' is read-only.")


def normalise_text(name: str, spec: FieldSpec, value: str) -> str:
    """AL assignment: Code fields are trimmed and upper-cased; both kinds check the length."""
    if spec.type == "code":
        value = value.strip().upper()
    if spec.length is not None and len(value) > spec.length:
        raise ODataError(
            400,
            "Application_StringExceededLength",
            f"The length of the string is {len(value)}, but it must be less than or equal to "
            f"{spec.length} characters. Value: {value}",
        )
    return value


def check_phone(value: str, field_caption: str, table_and_key: str) -> None:
    """BC's ``Check Phone No.``: any letter is a FieldError."""
    if any(ch.isalpha() for ch in value):
        raise app_error(
            f"{field_caption} must not contain letters in {table_and_key}.",
            "Application_FieldValidationException",
        )


def check_email(value: str) -> None:
    """BC's ``Mail Management`` check; several addresses may be separated by ``;``."""
    if not value.strip():
        return
    for address in value.split(";"):
        address = address.strip()
        if not address:
            continue
        if " " in address or address.count("@") != 1 or not _EMAIL_RE.match(address):
            raise app_error(f'The email address "{address}" is not valid.')


# ---------------------------------------------------------------------------------------------
# the store

_version_counter = 0


def _next_version() -> int:
    global _version_counter
    _version_counter += 1
    return _version_counter


def etag_for(entity: Mapping[str, Any]) -> str:
    """A weak ETag in BC's shape (``W/"JzE5OzEyMzs..."``), changing with every modification."""
    version = f"{entity.get('_version', 0)}{abs(hash(entity.get('id', ''))) % 10**12:012d}"
    raw = f"'{len(version)};{version};'"
    return 'W/"' + base64.b64encode(raw.encode()).decode() + '"'


def touch(entity: dict[str, Any]) -> None:
    """Record a modification: new lastModifiedDateTime and ETag."""
    entity["lastModifiedDateTime"] = now_ms()
    entity["_version"] = _next_version()


@dataclass
class Company:
    """One BC company with its tables."""

    id: str
    name: str
    created: datetime
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    item_by_number: dict[str, str] = field(default_factory=dict)
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    account_by_number: dict[str, str] = field(default_factory=dict)
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    customer_by_number: dict[str, str] = field(default_factory=dict)
    customer_by_email: dict[str, list[str]] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    order_by_number: dict[str, str] = field(default_factory=dict)
    order_by_ext: dict[str, list[str]] = field(default_factory=dict)
    lines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # order id -> lines
    line_index: dict[str, str] = field(default_factory=dict)  # line id -> order id
    countries: dict[str, dict[str, Any]] = field(default_factory=dict)  # code -> entity
    currencies: dict[str, str] = field(default_factory=dict)  # code -> id
    units: dict[str, str] = field(default_factory=dict)  # code -> id
    vat_groups: dict[str, Decimal] = field(default_factory=dict)  # code -> VAT %
    next_order_no: int = 101001
    next_customer_no: int = 10

    def entity(self) -> dict[str, Any]:
        """The ``companies`` entity."""
        return {
            "id": self.id,
            "systemVersion": "25.0.23364.23934",
            "timestamp": 0,
            "name": self.name,
            "displayName": self.name,
            "businessProfileId": "",
            "systemCreatedAt": self.created,
            "systemCreatedBy": ZERO_GUID,
            "systemModifiedAt": self.created,
            "systemModifiedBy": ZERO_GUID,
            "_version": 1,
        }

    def tax_groups(self) -> list[dict[str, Any]]:
        """The VAT Prod. Posting Groups as the ``taxGroups`` API shows them."""
        return [
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.id}/taxGroups/{code}")),
                "code": code,
                "displayName": f"VAT {format(rate.normalize(), 'f')} %",
                "taxType": "VAT",
                "lastModifiedDateTime": self.created,
            }
            for code, rate in sorted(self.vat_groups.items())
        ]

    def vat_group_for(self, percent: Decimal) -> str:
        """The VAT Prod. Posting Group code for a rate, registering it if new."""
        for code, rate in self.vat_groups.items():
            if rate == percent:
                return code
        code = "VAT" + format(percent.normalize(), "f").replace(".", "_")
        self.vat_groups[code] = percent
        return code

    def currency_rounding(self, currency: str) -> Decimal:
        """Amount rounding precision of a document currency ('' = LCY)."""
        return CURRENCY_ROUNDING.get(currency, CENT) if currency else CENT

    # -- customers
    def index_customer(self, customer: dict[str, Any]) -> None:
        """Add a customer to the look-up indexes."""
        self.customers[customer["id"]] = customer
        self.customer_by_number[customer["number"]] = customer["id"]
        if customer["email"]:
            self.customer_by_email.setdefault(customer["email"], []).append(customer["id"])

    def next_customer_number(self) -> str:
        """``C00010``, ``C00020``, ... skipping numbers already taken by hand."""
        while True:
            number = f"C{self.next_customer_no:05d}"
            self.next_customer_no += 10
            if number not in self.customer_by_number:
                return number

    def customer_by_no(self, number: str) -> dict[str, Any] | None:
        """A customer by No."""
        cid = self.customer_by_number.get(number)
        return self.customers.get(cid) if cid else None


def render(entity: Mapping[str, Any], schema: Schema, select: list[str] | None) -> dict[str, Any]:
    """The JSON shape of an entity (``@odata.etag`` first), with Decimal numbers kept."""
    out: dict[str, Any] = {"@odata.etag": etag_for(entity)}
    names = select if select is not None else list(schema)
    for name in names:
        value = entity.get(name)
        if isinstance(value, datetime):
            value = format_datetime(value)
        elif isinstance(value, date):
            value = value.isoformat()
        out[name] = value
    return out


def json_default(value: Any) -> Any:
    """``json.dumps`` hook: Decimals become JSON numbers."""
    if isinstance(value, Decimal):
        if value == value.to_integral_value():
            return int(value)
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(document: Any) -> bytes:
    """Serialise a response document."""
    return json.dumps(document, default=json_default, ensure_ascii=False).encode("utf-8")


# ---------------------------------------------------------------------------------------------
# setup helpers (not the API)


def _free_number(schema: Schema, number: str, taken: Mapping[str, str], noun: str) -> str:
    """A new record's No. as the table stores it; ValueError when it is blank or taken."""
    number = normalise_text("number", schema["number"], number)
    if not number:
        raise ValueError(f"an {noun} needs a number")
    if number in taken:
        raise ValueError(f"{noun} {number} exists already")
    return number


def make_item(
    company: Company,
    number: str,
    display_name: str,
    *,
    blocked: bool,
    unit_price: Decimal,
    vat_percent: Decimal,
) -> dict[str, Any]:
    """Create an item directly in the table."""
    number = _free_number(ITEM_SCHEMA, number, company.item_by_number, "item")
    display_name = normalise_text("displayName", ITEM_SCHEMA["displayName"], display_name)
    item: dict[str, Any] = {
        "id": new_guid(),
        "number": number,
        "displayName": display_name or number,
        "displayName2": "",
        "type": "Inventory",
        "itemCategoryId": ZERO_GUID,
        "itemCategoryCode": "",
        "blocked": blocked,
        "gtin": "",
        "inventory": Decimal("0"),
        "unitPrice": Decimal(unit_price),
        "priceIncludesTax": False,
        "unitCost": Decimal("0"),
        "taxGroupId": ZERO_GUID,
        "taxGroupCode": "",
        "baseUnitOfMeasureId": company.units["PCS"],
        "baseUnitOfMeasureCode": "PCS",
        "generalProductPostingGroupId": ZERO_GUID,
        "generalProductPostingGroupCode": "RETAIL",
        "inventoryPostingGroupId": ZERO_GUID,
        "inventoryPostingGroupCode": "RESALE",
        "_vat": Decimal(vat_percent),
        "_vat_group": company.vat_group_for(Decimal(vat_percent)),
    }
    touch(item)
    company.items[item["id"]] = item
    company.item_by_number[number] = item["id"]
    return item


def make_account(
    company: Company, number: str, display_name: str, *, vat_percent: Decimal, blocked: bool = False
) -> dict[str, Any]:
    """Create a G/L account directly in the table."""
    number = _free_number(ACCOUNT_SCHEMA, number, company.account_by_number, "account")
    account: dict[str, Any] = {
        "id": new_guid(),
        "number": number,
        "displayName": display_name or number,
        "category": "Income",
        "subCategory": "Income, Services",
        "blocked": blocked,
        "accountType": "Posting",
        "directPosting": True,
        "netChange": Decimal("0"),
        "_vat": Decimal(vat_percent),
        "_vat_group": company.vat_group_for(Decimal(vat_percent)),
    }
    touch(account)
    company.accounts[account["id"]] = account
    company.account_by_number[number] = account["id"]
    return account


def make_country(company: Company, code: str) -> dict[str, Any]:
    """A Country/Region record."""
    country: dict[str, Any] = {
        "id": new_guid(),
        "code": code.upper(),
        "displayName": COUNTRY_NAMES.get(code.upper(), code.upper()),
        "addressFormat": "Post_x0020_Code_x002B_City",
    }
    touch(country)
    company.countries[country["code"]] = country
    return country


# ---------------------------------------------------------------------------------------------
# customers POST


def resolve_currency(company: Company, values: Mapping[str, Any], entity: dict[str, Any]) -> None:
    """currencyId / currencyCode triggers of the API pages (LCY code is stored as blank)."""
    chosen: str | None = None
    if "currencyId" in values:
        cur_id = values["currencyId"]
        if cur_id == ZERO_GUID:
            chosen = ""
        else:
            match = [code for code, cid in company.currencies.items() if cid == cur_id]
            if not match:
                raise app_error('The "currencyId" does not match to a Currency.')
            chosen = match[0]
    if "currencyCode" in values:
        code = values["currencyCode"]
        nav_code = "" if code == LCY_CODE else code
        if chosen:
            if chosen != nav_code:
                raise app_error("The currency values do not match to a specific Currency.")
        elif nav_code and nav_code not in company.currencies:
            raise app_error('The "currencyCode" does not match to a Currency.')
        chosen = nav_code
    if chosen is not None:
        entity["_currency"] = chosen
        entity["currencyCode"] = chosen or LCY_CODE
        entity["currencyId"] = company.currencies.get(chosen, ZERO_GUID) if chosen else ZERO_GUID


_UNKNOWN_ID_MESSAGES = {
    "paymentTermsId": 'The "paymentTermsId" does not match to a Payment Terms.',
    "shipmentMethodId": 'The "shipmentMethodId" does not match to a Shipment Method.',
    "paymentMethodId": 'The "paymentMethodId" does not match to a Payment Method.',
}


def reject_unknown_id(values: Mapping[str, Any], name: str) -> None:
    if name in values and values[name] != ZERO_GUID:
        raise app_error(_UNKNOWN_ID_MESSAGES[name])


def normalised(name: str, spec: FieldSpec, value: Any) -> Any:
    """A Code or Text value as the page stores it (trimmed, Code upper-cased); others as given."""
    if isinstance(value, str) and spec.type in ("string", "code"):
        return normalise_text(name, spec, value)
    return value


def _new_customer() -> dict[str, Any]:
    return {
        "id": new_guid(),
        "number": "",
        "displayName": "",
        "type": "Company",
        "addressLine1": "",
        "addressLine2": "",
        "city": "",
        "state": "",
        "country": "",
        "postalCode": "",
        "phoneNumber": "",
        "email": "",
        "website": "",
        "taxLiable": False,
        "taxAreaId": ZERO_GUID,
        "taxAreaDisplayName": "",
        "taxRegistrationNumber": "",
        "currencyId": ZERO_GUID,
        "currencyCode": LCY_CODE,
        "_currency": "",
        "paymentTermsId": ZERO_GUID,
        "shipmentMethodId": ZERO_GUID,
        "paymentMethodId": ZERO_GUID,
        "blocked": "_x0020_",
    }


def _check_display_name(company: Company, customer: Mapping[str, Any], value: Any) -> None:
    if value == "":
        raise app_error('The blank "displayName" is not allowed.')


def _check_customer_country(company: Company, customer: Mapping[str, Any], value: Any) -> None:
    if value and value not in company.countries:
        raise table_relation_error("Country/Region Code", "Customer", value, "Country/Region")


def _check_customer_phone(company: Company, customer: Mapping[str, Any], value: Any) -> None:
    check_phone(value, "Phone No.", f"Customer No.='{customer['number']}'")


def _check_customer_email(company: Company, customer: Mapping[str, Any], value: Any) -> None:
    check_email(value)


def _check_tax_area(company: Company, customer: Mapping[str, Any], value: Any) -> None:
    if value != ZERO_GUID:
        raise table_relation_error("Tax Area ID", "Customer", value, "Tax Area")


# The OnValidate checks of the customer page, per field.
_CUSTOMER_CHECKS: dict[str, Callable[[Company, Mapping[str, Any], Any], None]] = {
    "displayName": _check_display_name,
    "country": _check_customer_country,
    "phoneNumber": _check_customer_phone,
    "email": _check_customer_email,
    "taxAreaId": _check_tax_area,
}


def _number_customer(company: Company, customer: dict[str, Any]) -> None:
    """Keep a given customer No. that is free, or take the next one of the number series."""
    if not customer["number"]:
        customer["number"] = company.next_customer_number()
    elif customer["number"] in company.customer_by_number:
        raise ODataError(
            400,
            "Internal_EntityWithSameKeyExists",
            "The record in table Customer already exists. Identification fields and values: "
            f"No.='{customer['number']}'",
        )


def create_customer(company: Company, body: Mapping[str, Any], ieee754: bool) -> dict[str, Any]:
    """POST customers: bind, validate in page order, insert; returns the new entity."""
    values = bind_body(body, CUSTOMER_SCHEMA, "customer", ieee754)
    customer = _new_customer()
    for name, spec in CUSTOMER_SCHEMA.items():
        if name not in values:
            continue
        check_read_only(name, spec)
        value = normalised(name, spec, values[name])
        check = _CUSTOMER_CHECKS.get(name)
        if check is not None:
            check(company, customer, value)
        if name not in ("currencyId", "currencyCode"):
            customer[name] = value
    resolve_currency(company, values, customer)
    for name in ("paymentTermsId", "shipmentMethodId", "paymentMethodId"):
        reject_unknown_id(values, name)
    if not customer["displayName"]:
        raise app_error('A "displayName" must be provided.')
    _number_customer(company, customer)
    touch(customer)
    company.index_customer(customer)
    return customer
