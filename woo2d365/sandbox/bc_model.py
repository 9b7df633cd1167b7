"""Business Central data and rules for the emulator: companies, items, G/L accounts, customers,
sales orders with their lines, and the validations the API pages run on a POST.

Follows ``docs/systems.md`` (B2, B3) and the API pages of Business Central
(``APIV2 - Sales Orders`` 30028, ``APIV2 - Sales Order Lines`` 30044, ``APIV2 - Customers`` 30009):
fields are validated in page order, Code fields are trimmed and upper-cased, lengths are enforced,
the deep insert is atomic, and VAT is computed per VAT rate over the document (BC's cumulative
rounding), not per line.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from woo2d365.sandbox.bc_odata import FieldSpec, ODataError, Schema

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
ORDER_STATUS = ("Draft", "In_x0020_Review", "Open")
ORDER_SCHEMA: Schema = {
    "id": _f("guid", ro=True),
    "number": _f("code", 20, ro=True),
    "externalDocumentNumber": _f("code", 35),
    "orderDate": _f("date"),
    "postingDate": _f("date"),
    "customerId": _f("guid"),
    "customerNumber": _f("code", 20),
    "customerName": _f("string", 100, ro=True),
    "billToName": _f("string", 100, ro=True),
    "billToCustomerId": _f("guid"),
    "billToCustomerNumber": _f("code", 20),
    "shipToName": _f("string", 100),
    "shipToContact": _f("string", 100),
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
    "shipToAddressLine1": _f("string", 100),
    "shipToAddressLine2": _f("string", 50),
    "shipToCity": _f("string", 30),
    "shipToCountry": _f("code", 10),
    "shipToState": _f("string", 30),
    "shipToPostCode": _f("code", 20),
    "shortcutDimension1Code": _f("code", 20),
    "shortcutDimension2Code": _f("code", 20),
    "currencyId": _f("guid"),
    "currencyCode": _f("code", 10),
    "pricesIncludeTax": _f("bool"),
    "paymentTermsId": _f("guid"),
    "shipmentMethodId": _f("guid"),
    "salesperson": _f("code", 20),
    "partialShipping": _f("bool"),
    "requestedDeliveryDate": _f("date"),
    "discountAmount": _f("decimal"),
    "discountAppliedBeforeTax": _f("bool", ro=True),
    "totalAmountExcludingTax": _f("decimal", ro=True),
    "totalTaxAmount": _f("decimal", ro=True),
    "totalAmountIncludingTax": _f("decimal", ro=True),
    "fullyShipped": _f("bool", ro=True),
    "status": _f("enum", ro=True, enum=ORDER_STATUS),
    "lastModifiedDateTime": _f("datetime", ro=True),
    "phoneNumber": _f("string", 30),
    "email": _f("string", 80),
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
# Navigation properties BC has but the emulator does not serve (a 501, not a fake 400).
UNSERVED_NAVIGATIONS: dict[str, tuple[str, ...]] = {
    "salesOrder": (
        "customer",
        "currency",
        "paymentTerms",
        "shipmentMethod",
        "pdfDocument",
        "attachments",
        "documentAttachments",
        "dimensionSetLines",
    ),
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
    return {
        "string": "Edm.String",
        "code": "Edm.String",
        "enum": "Edm.String",
        "guid": "Edm.Guid",
        "date": "Edm.Date",
        "datetime": "Edm.DateTimeOffset",
        "decimal": "Edm.Decimal",
        "int": "Edm.Int32",
        "bool": "Edm.Boolean",
    }[spec.type]


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
    number = normalise_text("number", ITEM_SCHEMA["number"], number)
    if not number:
        raise ValueError("an item needs a number")
    if number in company.item_by_number:
        raise ValueError(f"item {number} exists already")
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
    number = normalise_text("number", ACCOUNT_SCHEMA["number"], number)
    if not number:
        raise ValueError("an account needs a number")
    if number in company.account_by_number:
        raise ValueError(f"account {number} exists already")
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


def _resolve_currency(company: Company, values: Mapping[str, Any], entity: dict[str, Any]) -> None:
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


def _reject_unknown_id(values: Mapping[str, Any], name: str) -> None:
    if name in values and values[name] != ZERO_GUID:
        raise app_error(_UNKNOWN_ID_MESSAGES[name])


def _normalised(name: str, spec: FieldSpec, value: Any) -> Any:
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
        value = _normalised(name, spec, values[name])
        check = _CUSTOMER_CHECKS.get(name)
        if check is not None:
            check(company, customer, value)
        if name not in ("currencyId", "currencyCode"):
            customer[name] = value
    _resolve_currency(company, values, customer)
    for name in ("paymentTermsId", "shipmentMethodId", "paymentMethodId"):
        _reject_unknown_id(values, name)
    if not customer["displayName"]:
        raise app_error('A "displayName" must be provided.')
    _number_customer(company, customer)
    touch(customer)
    company.index_customer(customer)
    return customer


# ---------------------------------------------------------------------------------------------
# sales orders POST (deep insert) and lines POST


def _new_order(company: Company) -> dict[str, Any]:
    today = datetime.now(UTC).date()
    return {
        "id": new_guid(),
        "number": "",
        "externalDocumentNumber": "",
        "orderDate": today,
        "postingDate": today,
        "customerId": ZERO_GUID,
        "customerNumber": "",
        "customerName": "",
        "billToName": "",
        "billToCustomerId": ZERO_GUID,
        "billToCustomerNumber": "",
        "shipToName": "",
        "shipToContact": "",
        "sellToAddressLine1": "",
        "sellToAddressLine2": "",
        "sellToCity": "",
        "sellToCountry": "",
        "sellToState": "",
        "sellToPostCode": "",
        "billToAddressLine1": "",
        "billToAddressLine2": "",
        "billToCity": "",
        "billToCountry": "",
        "billToState": "",
        "billToPostCode": "",
        "shipToAddressLine1": "",
        "shipToAddressLine2": "",
        "shipToCity": "",
        "shipToCountry": "",
        "shipToState": "",
        "shipToPostCode": "",
        "shortcutDimension1Code": "",
        "shortcutDimension2Code": "",
        "currencyId": ZERO_GUID,
        "currencyCode": LCY_CODE,
        "_currency": "",
        "pricesIncludeTax": False,
        "paymentTermsId": ZERO_GUID,
        "shipmentMethodId": ZERO_GUID,
        "salesperson": "",
        "partialShipping": True,
        "requestedDeliveryDate": BLANK_DATE,
        "discountAmount": Decimal("0"),
        "discountAppliedBeforeTax": True,
        "totalAmountExcludingTax": Decimal("0"),
        "totalTaxAmount": Decimal("0"),
        "totalAmountIncludingTax": Decimal("0"),
        "fullyShipped": False,
        "status": "Draft",
        "phoneNumber": "",
        "email": "",
    }


_SELL_TO_FROM_CUSTOMER = {
    "customerName": "displayName",
    "sellToAddressLine1": "addressLine1",
    "sellToAddressLine2": "addressLine2",
    "sellToCity": "city",
    "sellToCountry": "country",
    "sellToState": "state",
    "sellToPostCode": "postalCode",
    "phoneNumber": "phoneNumber",
    "email": "email",
}
_SHIP_TO_FROM_CUSTOMER = {
    "shipToName": "displayName",
    "shipToAddressLine1": "addressLine1",
    "shipToAddressLine2": "addressLine2",
    "shipToCity": "city",
    "shipToCountry": "country",
    "shipToState": "state",
    "shipToPostCode": "postalCode",
}
_BILL_TO_FROM_SELL_TO = {
    "billToAddressLine1": "sellToAddressLine1",
    "billToAddressLine2": "sellToAddressLine2",
    "billToCity": "sellToCity",
    "billToCountry": "sellToCountry",
    "billToState": "sellToState",
    "billToPostCode": "sellToPostCode",
}
_HEADER_RELATIONS = {
    "sellToCountry": ("Sell-to Country/Region Code", "Country/Region"),
    "shipToCountry": ("Ship-to Country/Region Code", "Country/Region"),
    "shortcutDimension1Code": ("Shortcut Dimension 1 Code", "Dimension Value"),
    "shortcutDimension2Code": ("Shortcut Dimension 2 Code", "Dimension Value"),
    "salesperson": ("Salesperson Code", "Salesperson/Purchaser"),
}


def _check_customer_not_blocked(customer: Mapping[str, Any]) -> None:
    # Ship and Invoice block orders too (Customer.CheckBlockedCustOnDocs).
    if customer["blocked"] in ("Ship", "Invoice", "All"):
        raise app_error(
            f"You cannot create this type of document when Customer {customer['number']} is "
            f"blocked with type {customer['blocked']}"
        )


def _party(
    company: Company, known: dict[str, Any] | None, by_id: bool, value: Any, role: str
) -> dict[str, Any]:
    """The sell-to or bill-to customer named by id or number; both given must agree."""
    if by_id:
        found = company.customers.get(value)
    elif known is not None:
        if known["number"] != value:
            raise app_error(f"The {role} customer values do not match to a specific Customer.")
        return known
    else:
        found = company.customer_by_no(value)
    if found is None:
        raise app_error(f"The {role} customer cannot be found.")
    return found


def _bind_order_body(
    body: Mapping[str, Any], ieee754: bool
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The bound header values and the bound values of each deep-inserted line."""
    values = bind_body(body, ORDER_SCHEMA, "salesOrder", ieee754, ("salesOrderLines",))
    raw_lines = values.pop("salesOrderLines", [])
    if not isinstance(raw_lines, list) or any(not isinstance(x, dict) for x in raw_lines):
        raise bad_request("Invalid Request Body: 'salesOrderLines' must be an array of objects.")
    return values, [bind_body(raw, LINE_SCHEMA, "salesOrderLine", ieee754) for raw in raw_lines]


def _check_header_field(company: Company, values: Mapping[str, Any], name: str, value: Any) -> None:
    """Table relations and unknown ids of one header field (page order)."""
    if name in _HEADER_RELATIONS and value:
        caption, related = _HEADER_RELATIONS[name]
        if related != "Country/Region" or value not in company.countries:
            raise table_relation_error(caption, "Sales Header", value, related)
    elif name in ("paymentTermsId", "shipmentMethodId"):
        _reject_unknown_id(values, name)


def _order_parties(
    company: Company, values: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Validate the header fields in page order; the sell-to and the bill-to customer (if any)."""
    sell_to: dict[str, Any] | None = None
    bill_to: dict[str, Any] | None = None
    for name, spec in ORDER_SCHEMA.items():
        if name not in values:
            continue
        check_read_only(name, spec)
        value = _normalised(name, spec, values[name])
        if name in ("customerId", "customerNumber"):
            sell_to = _party(company, sell_to, name == "customerId", value, "sell-to")
        elif name in ("billToCustomerId", "billToCustomerNumber"):
            bill_to = _party(company, bill_to, name == "billToCustomerId", value, "bill-to")
        else:
            _check_header_field(company, values, name, value)
    if sell_to is None:
        raise app_error('A "customerNumber" or a "customerId" must be provided.')
    return sell_to, bill_to


def _apply_customers(
    order: dict[str, Any], sell_to: Mapping[str, Any], bill_to: Mapping[str, Any] | None
) -> None:
    """Validating the sell-to (and bill-to) customer copies its data into the header."""
    _check_customer_not_blocked(sell_to)
    order["customerId"] = sell_to["id"]
    order["customerNumber"] = sell_to["number"]
    for target, source in _SELL_TO_FROM_CUSTOMER.items():
        order[target] = sell_to[source]
    for target, source in _SHIP_TO_FROM_CUSTOMER.items():
        order[target] = sell_to[source]
    order["_currency"] = sell_to["_currency"]
    order["currencyCode"] = sell_to["currencyCode"]
    order["currencyId"] = sell_to["currencyId"]
    bill = bill_to or sell_to
    if bill_to is not None:
        _check_customer_not_blocked(bill_to)
    order["billToCustomerId"] = bill["id"]
    order["billToCustomerNumber"] = bill["number"]
    order["billToName"] = bill["displayName"]


_PARTY_AND_CURRENCY_FIELDS = (
    "customerId",
    "customerNumber",
    "billToCustomerId",
    "billToCustomerNumber",
    "currencyId",
    "currencyCode",
)


def _apply_header_values(order: dict[str, Any], values: Mapping[str, Any]) -> None:
    """The fields the client set, on top of the customer's (TransferFieldsWithValidate)."""
    for name, spec in ORDER_SCHEMA.items():
        if name not in values or name in _PARTY_AND_CURRENCY_FIELDS:
            continue
        value = _normalised(name, spec, values[name])
        if name == "phoneNumber":
            check_phone(value, "Sell-to Phone No.", "Sales Header Document Type='Order',No.=''")
        if name == "email":
            check_email(value)
        order[name] = value


_BILL_TO_FROM_CUSTOMER = {
    "billToAddressLine1": "addressLine1",
    "billToAddressLine2": "addressLine2",
    "billToCity": "city",
    "billToCountry": "country",
    "billToState": "state",
    "billToPostCode": "postalCode",
}


def _apply_bill_to_address(order: dict[str, Any], bill_to: Mapping[str, Any] | None) -> None:
    """The bill-to address: the bill-to customer's, else the sell-to address of the header."""
    if bill_to is None:
        for target, source in _BILL_TO_FROM_SELL_TO.items():
            order[target] = order[source]
    else:
        for target, source in _BILL_TO_FROM_CUSTOMER.items():
            order[target] = bill_to[source]


def _build_deep_lines(
    company: Company, order: dict[str, Any], line_values: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The deep-inserted lines, numbered 10000, 20000, ..."""
    lines: list[dict[str, Any]] = []
    for index, lv in enumerate(line_values):
        if "sequence" in lv:
            # BC 22 deep-insert regression (``docs/systems.md`` B2): lines with "sequence" fail.
            raise ODataError(
                500,
                "Internal_ServerError",
                "You cannot change the value of the SystemId field. Table: Sales Line, "
                f"Document Type='Order', Document No.='{order['number']}', "
                f"Line No.='{(index + 1) * 10000}'",
            )
        lines.append(_build_line(company, order, lv, (index + 1) * 10000))
    return lines


def _store_order(company: Company, order: dict[str, Any], lines: list[dict[str, Any]]) -> None:
    """Commit a new order with its lines."""
    company.next_order_no += 1
    touch(order)
    for line in lines:
        touch(line)
    company.orders[order["id"]] = order
    company.order_by_number[order["number"]] = order["id"]
    company.order_by_ext.setdefault(order["externalDocumentNumber"], []).append(order["id"])
    company.lines[order["id"]] = lines
    for line in lines:
        company.line_index[line["id"]] = order["id"]


def create_sales_order(
    company: Company, body: Mapping[str, Any], ieee754: bool
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """POST salesOrders, with or without a deep-inserted ``salesOrderLines`` array.

    Nothing is stored unless the header and every line pass (one transaction).
    """
    values, line_values = _bind_order_body(body, ieee754)
    order = _new_order(company)
    sell_to, bill_to = _order_parties(company, values)
    # Sales Header: validating the sell-to customer copies its data, then the fields the
    # client set are applied on top (TransferFieldsWithValidate, in registration order).
    _apply_customers(order, sell_to, bill_to)
    _apply_header_values(order, values)
    _resolve_currency(company, values, order)
    _apply_bill_to_address(order, bill_to)
    order["number"] = f"S-ORD{company.next_order_no}"
    lines = _build_deep_lines(company, order, line_values)
    recalculate(company, order, lines)
    _store_order(company, order, lines)
    return order, lines


def add_sales_order_line(
    company: Company, order: dict[str, Any], body: Mapping[str, Any], ieee754: bool
) -> dict[str, Any]:
    """POST salesOrders({id})/salesOrderLines: one more line (``sequence`` allowed here)."""
    values = bind_body(body, LINE_SCHEMA, "salesOrderLine", ieee754)
    if order["status"] != "Draft":
        raise app_error(
            f"Status must be equal to 'Open'  in Sales Header: Document Type=Order, "
            f"No.={order['number']}. Current value is 'Released'.",
            "Application_FieldValidationException",
        )
    existing = company.lines.setdefault(order["id"], [])
    if "sequence" in values:
        line_no = values["sequence"]
        if line_no <= 0:
            raise app_error("The value for sequence must be greater than 0.")
        if any(line["sequence"] == line_no for line in existing):
            raise ODataError(
                400,
                "Internal_EntityWithSameKeyExists",
                "The record in table Sales Line already exists. Identification fields and "
                f"values: Document Type='Order',Document No.='{order['number']}',"
                f"Line No.='{line_no}'",
            )
    else:
        line_no = (max((line["sequence"] for line in existing), default=0) // 10000 + 1) * 10000
    line = _build_line(company, order, values, line_no)
    candidate = sorted([*existing, line], key=lambda x: x["sequence"])
    recalculate(company, order, candidate)
    existing[:] = candidate
    touch(line)
    touch(order)
    company.line_index[line["id"]] = order["id"]
    return line


def _line_key(order: Mapping[str, Any], line_no: int) -> str:
    return f"Sales Line Document Type='Order',Document No.='{order['number']}',Line No.='{line_no}'"


def _new_line(order: Mapping[str, Any], line_no: int) -> dict[str, Any]:
    return {
        "id": new_guid(),
        "documentId": order["id"],
        "sequence": line_no,
        "itemId": ZERO_GUID,
        "accountId": ZERO_GUID,
        "lineType": "Comment",
        "lineObjectNumber": "",
        "description": "",
        "description2": "",
        "unitOfMeasureId": ZERO_GUID,
        "unitOfMeasureCode": "",
        "quantity": Decimal("0"),
        "unitPrice": Decimal("0"),
        "discountAmount": Decimal("0"),
        "discountPercent": Decimal("0"),
        "discountAppliedBeforeTax": True,
        "taxCode": "",
        "taxPercent": Decimal("0"),
        "shipmentDate": order["orderDate"],
        "shippedQuantity": Decimal("0"),
        "invoicedQuantity": Decimal("0"),
        "itemVariantId": ZERO_GUID,
        "locationId": ZERO_GUID,
    }


@dataclass
class _LineFields:
    """A sales line while the page validates its fields: the item or account chosen so far."""

    company: Company
    line: dict[str, Any]
    item: dict[str, Any] | None = None
    account: dict[str, Any] | None = None


def _keep_parent_field(fields: _LineFields, name: str, value: Any) -> None:
    """documentId and sequence are set by the parent (SubPageLink) / by the caller."""


def _set_item_id(fields: _LineFields, name: str, value: Any) -> None:
    item = fields.company.items.get(value)
    if item is None:
        raise app_error("Item does not exist.")
    fields.item = item
    fields.line["lineType"] = "Item"
    fields.line["lineObjectNumber"] = item["number"]


def _set_account_id(fields: _LineFields, name: str, value: Any) -> None:
    if fields.item is not None and value != ZERO_GUID:
        raise app_error('Both "itemId" and "accountId" are specified. Specify only one of them.')
    account = fields.company.accounts.get(value)
    if account is None:
        raise app_error("Account does not exist.")
    fields.account = account
    fields.line["lineType"] = "Account"
    fields.line["lineObjectNumber"] = account["number"]


def _set_line_object_number(fields: _LineFields, name: str, value: Any) -> None:
    company = fields.company
    if fields.line["lineType"] == "Item":
        item_id = company.item_by_number.get(value)
        if item_id is None:
            raise app_error("Item does not exist.")
        fields.item = company.items[item_id]
    elif fields.line["lineType"] == "Account":
        account_id = company.account_by_number.get(value)
        if account_id is None:
            raise app_error("Account does not exist.")
        fields.account = company.accounts[account_id]
    fields.line["lineObjectNumber"] = value


def _set_unit_of_measure(fields: _LineFields, name: str, value: Any) -> None:
    if fields.line["lineType"] != "Item":
        raise app_error("Unit of Measure can be set only for lines with type Item.")
    code = value
    if name == "unitOfMeasureId":
        match = [c for c, uid in fields.company.units.items() if uid == value]
        if not match:
            raise table_relation_error("Unit of Measure Id", "Sales Line", value, "Unit of Measure")
        code = match[0]
    fields.line["unitOfMeasureCode"] = code


def _set_tax_code(fields: _LineFields, name: str, value: Any) -> None:
    if value and value not in fields.company.vat_groups:
        raise table_relation_error(
            "VAT Prod. Posting Group", "Sales Line", value, "VAT Product Posting Group"
        )
    fields.line["taxCode"] = value


_LINE_UNSUPPORTED_RELATIONS = {
    "itemVariantId": ("Variant Code", "Item Variant"),
    "locationId": ("Location Code", "Location"),
}


def _reject_variant_or_location(fields: _LineFields, name: str, value: Any) -> None:
    """The sandbox has no item variants or locations: only the blank GUID is accepted."""
    if value != ZERO_GUID:
        caption, related = _LINE_UNSUPPORTED_RELATIONS[name]
        raise table_relation_error(caption, "Sales Line", value, related)


def _set_line_field(fields: _LineFields, name: str, value: Any) -> None:
    fields.line[name] = value


# The OnValidate triggers of the sales line page, per field (others are stored as given).
_LINE_FIELD_SETTERS: dict[str, Callable[[_LineFields, str, Any], None]] = {
    "documentId": _keep_parent_field,
    "sequence": _keep_parent_field,
    "itemId": _set_item_id,
    "accountId": _set_account_id,
    "lineObjectNumber": _set_line_object_number,
    "unitOfMeasureId": _set_unit_of_measure,
    "unitOfMeasureCode": _set_unit_of_measure,
    "taxCode": _set_tax_code,
    "itemVariantId": _reject_variant_or_location,
    "locationId": _reject_variant_or_location,
}


@dataclass(frozen=True)
class _NumberedTable:
    """The table a line of type Item or Account takes its No. from."""

    caption: str  # as BC names the table in messages
    id_field: str  # the line's field that links the record
    by_number: Callable[[Company], Mapping[str, str]]
    rows: Callable[[Company], Mapping[str, dict[str, Any]]]
    chosen: Callable[[_LineFields], dict[str, Any] | None]


_NUMBERED_TABLES = {
    "Item": _NumberedTable(
        "Item", "itemId", lambda c: c.item_by_number, lambda c: c.items, lambda f: f.item
    ),
    "Account": _NumberedTable(
        "G/L Account",
        "accountId",
        lambda c: c.account_by_number,
        lambda c: c.accounts,
        lambda f: f.account,
    ),
}
_UNSUPPORTED_LINE_TABLES = {
    "Resource": "Resource",
    "Fixed_x0020_Asset": "Fixed Asset",
    "Charge": "Item Charge",
}


def _validate_numbered_line(
    fields: _LineFields,
    table: _NumberedTable,
    order: Mapping[str, Any],
    values: Mapping[str, Any],
    line_no: int,
) -> None:
    """Sales Line "No." of an Item or G/L Account line, then the defaults it copies."""
    company, line = fields.company, fields.line
    number = line["lineObjectNumber"]
    record = table.chosen(fields)
    if record is None or record["number"] != number:
        if not number:
            raise _no_must_have_value(order, line_no)
        record_id = table.by_number(company).get(number)
        if record_id is None:
            raise record_not_found(table.caption, "No.", number)
        record = table.rows(company)[record_id]
    if record["blocked"]:
        raise app_error(
            f"Blocked must be equal to 'No'  in {table.caption}: No.={record['number']}. "
            "Current value is 'Yes'.",
            "Application_FieldValidationException",
        )
    line[table.id_field] = record["id"]
    _apply_defaults(company, order, line, values, record)


def _validate_comment_line(
    line: Mapping[str, Any], order: Mapping[str, Any], values: Mapping[str, Any], line_no: int
) -> None:
    """A comment line has no No. and no amounts."""
    number = line["lineObjectNumber"]
    if number:
        raise record_not_found("Standard Text", "Code", number)
    for name in ("quantity", "unitPrice", "discountAmount", "discountPercent"):
        if values.get(name, Decimal("0")) != 0:
            raise app_error(
                f"Type must not be   in {_line_key(order, line_no)}.",
                "Application_FieldValidationException",
            )


def _validate_line_number(
    fields: _LineFields, order: Mapping[str, Any], values: Mapping[str, Any], line_no: int
) -> None:
    """Sales Line: No. validation against the table of the line type."""
    line_type = fields.line["lineType"]
    table = _NUMBERED_TABLES.get(line_type)
    if table is not None:
        _validate_numbered_line(fields, table, order, values, line_no)
        return
    if line_type == "Comment":
        _validate_comment_line(fields.line, order, values, line_no)
        return
    caption = _UNSUPPORTED_LINE_TABLES[line_type]
    number = fields.line["lineObjectNumber"]
    if not number:
        raise _no_must_have_value(order, line_no)
    raise record_not_found(caption, "No.", number)


def _check_line_discount(line: Mapping[str, Any], values: Mapping[str, Any]) -> None:
    if "discountPercent" in values:
        pct = values["discountPercent"]
        if pct < 0:
            raise app_error("Line discount percentage must be positive.")
        if pct > 100:
            raise app_error("Line discount percentage must be below 100.")
    elif line["discountAmount"] < 0:
        raise app_error("Line discount amount must be positive.")


def _build_line(
    company: Company, order: dict[str, Any], values: Mapping[str, Any], line_no: int
) -> dict[str, Any]:
    """Validate one line in page order, then as the Sales Line table does."""
    fields = _LineFields(company, _new_line(order, line_no))
    for name, spec in LINE_SCHEMA.items():
        if name not in values:
            continue
        check_read_only(name, spec)
        value = _normalised(name, spec, values[name])
        _LINE_FIELD_SETTERS.get(name, _set_line_field)(fields, name, value)
    _validate_line_number(fields, order, values, line_no)

    line = fields.line
    line["quantity"] = round_amount(line["quantity"], QUANTITY_PRECISION)
    line["unitPrice"] = round_amount(line["unitPrice"], UNIT_AMOUNT_PRECISION)
    _check_line_discount(line, values)
    line["shipQuantity"] = values.get("shipQuantity", line["quantity"])
    line["invoiceQuantity"] = values.get("invoiceQuantity", line["quantity"])
    line["_has_pct"] = "discountPercent" in values
    return line


def _no_must_have_value(order: Mapping[str, Any], line_no: int) -> ODataError:
    return app_error(
        f"No. must have a value in Sales Line: Document Type=Order, Document No.="
        f"{order['number']}, Line No.={line_no}. It cannot be zero or empty.",
        "Application_FieldValidationException",
    )


def _apply_defaults(
    company: Company,
    order: Mapping[str, Any],
    line: dict[str, Any],
    values: Mapping[str, Any],
    source: Mapping[str, Any],
) -> None:
    """What validating Sales Line "No." copies from the item or G/L account."""
    if "description" not in values:
        line["description"] = source["displayName"]
    vat_group = line["taxCode"] if "taxCode" in values and line["taxCode"] else source["_vat_group"]
    line["taxCode"] = vat_group
    line["taxPercent"] = company.vat_groups[vat_group]
    if "baseUnitOfMeasureCode" in source:
        if not line["unitOfMeasureCode"]:
            line["unitOfMeasureCode"] = source["baseUnitOfMeasureCode"]
        elif line["unitOfMeasureCode"] != source["baseUnitOfMeasureCode"]:
            raise table_relation_error(
                "Unit of Measure Code",
                "Sales Line",
                line["unitOfMeasureCode"],
                "Item Unit of Measure",
            )
        line["unitOfMeasureId"] = company.units.get(line["unitOfMeasureCode"], ZERO_GUID)
    if "unitPrice" not in values and "unitPrice" in source:
        price = source["unitPrice"]
        if order["pricesIncludeTax"] and not source.get("priceIncludesTax"):
            price = round_amount(price * (1 + line["taxPercent"] / 100), UNIT_AMOUNT_PRECISION)
        line["unitPrice"] = price


_LINE_AMOUNT_FIELDS = (
    "amountExcludingTax",
    "totalTaxAmount",
    "amountIncludingTax",
    "invoiceDiscountAllocation",
    "netAmount",
    "netTaxAmount",
    "netAmountIncludingTax",
)


def _price_line(line: dict[str, Any], precision: Decimal) -> None:
    """Line Amount = Round(Quantity x Unit Price) - Line Discount Amount."""
    gross = round_amount(line["quantity"] * line["unitPrice"], precision)
    if line["_has_pct"]:
        line["discountAmount"] = round_amount(gross * line["discountPercent"] / 100, precision)
    else:
        line["discountAmount"] = round_amount(line["discountAmount"], precision)
        line["discountPercent"] = (
            round_amount(line["discountAmount"] / gross * 100, Decimal("0.00001"))
            if gross
            else Decimal("0")
        )
    if line["discountPercent"] > 100:
        raise app_error("Line discount percentage must be below 100.")
    line["_line_amount"] = gross - line["discountAmount"]


def _allocate_invoice_discount(
    order: Mapping[str, Any], priced: Sequence[dict[str, Any]], precision: Decimal
) -> None:
    """The header ``discountAmount`` spread over the item lines by amount."""
    discount = order["discountAmount"]
    eligible = [line for line in priced if line["lineType"] == "Item"]
    base = sum((line["_line_amount"] for line in eligible), Decimal("0"))
    for line in priced:
        line["_inv_disc"] = Decimal("0")
    if not discount:
        return
    if discount < 0 or discount > base:
        raise app_error(
            f"The discount amount {discount} must be between 0 and the amount of the lines "
            f"that allow an invoice discount ({base})."
        )
    running = Decimal("0")
    allocated = Decimal("0")
    for line in eligible:
        running += line["_line_amount"]
        share = round_amount(discount * running / base, precision) - allocated
        line["_inv_disc"] = share
        allocated += share


def _vat_pass(
    priced: Sequence[Mapping[str, Any]], *, incl: bool, precision: Decimal, net: bool
) -> dict[str, tuple[Decimal, Decimal]]:
    """(amount excl. VAT, amount incl. VAT) per line id, VAT rounded over each rate's total."""
    # per VAT rate: running [basis, amount excl. VAT, amount incl. VAT]
    totals: dict[Decimal, list[Decimal]] = {}
    result: dict[str, tuple[Decimal, Decimal]] = {}
    for line in priced:
        rate = line["taxPercent"]
        acc = totals.setdefault(rate, [Decimal("0"), Decimal("0"), Decimal("0")])
        basis = line["_line_amount"] - (line["_inv_disc"] if net else Decimal("0"))
        acc[0] += basis
        if incl:
            excl = round_amount(acc[0] / (1 + rate / 100), precision) - acc[1]
            inc = basis
        else:
            excl = basis
            inc = acc[0] + round_amount(acc[0] * rate / 100, precision) - acc[2]
        acc[1] += excl
        acc[2] += inc
        result[line["id"]] = (excl, inc)
    return result


def recalculate(company: Company, order: dict[str, Any], lines: list[dict[str, Any]]) -> None:
    """Line amounts, invoice discount and VAT the way BC's Sales Line does it.

    Line Amount = Round(Quantity x Unit Price) - Line Discount Amount. VAT is calculated per VAT
    rate over the running total of the document and each line gets the difference, so the
    document's VAT is rounded once per rate (``SalesLine.UpdateVATAmounts``).
    """
    precision = company.currency_rounding(order["_currency"])
    incl = order["pricesIncludeTax"]
    priced: list[dict[str, Any]] = []
    for line in lines:
        if line["lineType"] == "Comment":
            for name in _LINE_AMOUNT_FIELDS:
                line[name] = Decimal("0")
            continue
        _price_line(line, precision)
        priced.append(line)
    _allocate_invoice_discount(order, priced, precision)

    before = _vat_pass(priced, incl=incl, precision=precision, net=False)
    after = _vat_pass(priced, incl=incl, precision=precision, net=True)
    total_excl = total_incl = Decimal("0")
    for line in priced:
        excl, inc = before[line["id"]]
        line["amountExcludingTax"] = excl
        line["amountIncludingTax"] = inc
        line["totalTaxAmount"] = inc - excl
        net_excl, net_inc = after[line["id"]]
        line["netAmount"] = net_excl
        line["netAmountIncludingTax"] = net_inc
        line["netTaxAmount"] = net_inc - net_excl
        # the allocation is shown excluding VAT
        line["invoiceDiscountAllocation"] = excl - net_excl
        total_excl += net_excl
        total_incl += net_inc
    order["totalAmountExcludingTax"] = total_excl
    order["totalAmountIncludingTax"] = total_incl
    order["totalTaxAmount"] = total_incl - total_excl
