"""The WordPress REST plumbing of the shop emulator: the parsed request, parameter validation
with WordPress's error bodies, JSON and HTML answers, and the list parameters orders and refunds
share (``docs/systems.md`` W1-W4).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from email.message import Message
from typing import Any
from urllib.parse import parse_qsl, quote

# rest_parse_date() in wp-includes/rest-api.php
_DATE_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(Z|[+-]\d{2}(?::\d{2})?)?$"
)
_JSON_TYPE = "application/json; charset=UTF-8"
_COMMON_HEADERS = (
    ("X-Powered-By", "PHP/8.2.29"),
    ("X-Robots-Tag", "noindex"),
    ("X-Content-Type-Options", "nosniff"),
    ("Access-Control-Expose-Headers", "X-WP-Total, X-WP-TotalPages, Link"),
    (
        "Access-Control-Allow-Headers",
        "Authorization, X-WP-Nonce, Content-Disposition, Content-MD5, Content-Type",
    ),
    ("Expires", "Wed, 11 Jan 1984 05:00:00 GMT"),
    ("Cache-Control", "no-cache, must-revalidate, max-age=0, no-store, private"),
)


class ApiError(Exception):
    """A WordPress REST error: ``{"code", "message", "data": {"status", ...}}``."""

    def __init__(self, status: int, code: str, message: str, **data: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.data = data

    def body(self) -> dict[str, Any]:
        """The JSON body WordPress sends."""
        return {
            "code": self.code,
            "message": self.message,
            "data": {"status": self.status, **self.data},
        }


@dataclass
class Response:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Request:
    raw_method: str  # as sent on the wire (signed by OAuth)
    method: str  # after X-HTTP-Method-Override / _method
    raw_path: str
    route: str | None  # e.g. "/wc/v3/orders"; None when it is not a REST request
    query_pairs: list[tuple[str, str]]
    query: dict[str, Any]  # parsed the way PHP fills $_GET
    form: dict[str, Any]  # $_POST (form-encoded bodies only)
    json_body: Any
    json_error: str | None
    headers: Message
    body: bytes
    https: bool

    def param(self, name: str) -> Any:
        """A request parameter with WordPress's precedence: JSON body, form body, query."""
        if isinstance(self.json_body, dict) and name in self.json_body:
            return self.json_body[name]
        if name in self.form:
            return self.form[name]
        return self.query.get(name)

    def has(self, name: str) -> bool:
        return self.param(name) is not None


# --- helpers -----------------------------------------------------------------------------------


def php_parse(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Query pairs as PHP's ``$_GET``: ``a[]=x`` and ``a[0]=x`` become ``{"0": "x"}``."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        match = re.match(r"^([^\[\]]+)\[([^\]]*)\]", key)
        if not match:
            out[key] = value
            continue
        name, index = match.group(1), match.group(2)
        current = out.get(name)
        if not isinstance(current, dict):
            current = {}
            out[name] = current
        if index == "":
            numbers = [int(k) for k in current if k.isdigit()]
            index = str(max(numbers) + 1 if numbers else 0)
        current[index] = value
    return out


def rawurlencode(value: str) -> str:
    """PHP ``rawurlencode`` (RFC 3986)."""
    return quote(value, safe="-_.~")


def wp_json(value: Any) -> bytes:
    """``wp_json_encode`` without flags: ASCII with \\u escapes and escaped slashes."""
    return json.dumps(value, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/").encode()


def l_list(items: Iterable[str]) -> str:
    """``wp_sprintf_l``: "a, b, and c"."""
    values = list(items)
    if len(values) <= 1:
        return "".join(values)
    if len(values) == 2:
        return f"{values[0]} and {values[1]}"
    return ", ".join(values[:-1]) + ", and " + values[-1]


def wp_list(value: Any) -> list[str]:
    """``wp_parse_list``: a comma/space separated string or an array."""
    if isinstance(value, dict):
        return [str(v) for v in value.values()]
    if isinstance(value, list):
        return [str(v) for v in value]
    if value is None:
        return []
    return [part for part in re.split(r"[\s,]+", str(value)) if part]


def refuse_invalid_json(req: Request) -> None:
    """WordPress's answer to a body that is not JSON."""
    if req.json_error is not None:
        raise ApiError(
            400,
            "rest_invalid_json",
            "Invalid JSON body passed.",
            json_error_code=4,
            json_error_message=req.json_error,
        )


def refuse_unauthorised_batch(req: Request, authenticated: bool) -> None:
    """A ``/batch`` request needs valid JSON and an authenticated key."""
    refuse_invalid_json(req)
    if not authenticated:
        raise ApiError(
            401,
            "woocommerce_rest_cannot_batch",
            "Sorry, you are not allowed to batch manipulate this resource.",
        )


def as_list(value: Any) -> list[Any]:
    """A batch list as PHP sees it: a JSON object's values, a list, or nothing."""
    if isinstance(value, dict):
        return list(value.values())
    return value if isinstance(value, list) else []


def item_error(error: ApiError) -> dict[str, Any]:
    """A failed batch item's ``error`` member."""
    return {"code": error.code, "message": error.message, "data": {"status": error.status}}


def is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return False
    return number.is_finite() and number == number.to_integral_value()


def naive(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")  # noqa: DTZ007 - naive by design
    except ValueError:
        return None


def format_wc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


class Invalid:
    """Collects parameter errors into one ``rest_invalid_param`` answer, as WordPress does."""

    def __init__(self) -> None:
        self.errors: dict[str, tuple[str, str]] = {}

    def add(self, name: str, code: str, message: str) -> None:
        self.errors.setdefault(name, (code, message))

    def raise_if_any(self) -> None:
        if not self.errors:
            return
        raise ApiError(
            400,
            "rest_invalid_param",
            "Invalid parameter(s): " + ", ".join(self.errors),
            params={name: message for name, (_, message) in self.errors.items()},
            details={
                name: {"code": code, "message": message, "data": None}
                for name, (code, message) in self.errors.items()
            },
        )

    def integer(
        self,
        req: Request,
        name: str,
        default: int | None,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int | None:
        value = req.param(name)
        if value is None:
            return default
        if not is_integer(value):
            self.add(name, "rest_invalid_type", f"{name} is not of type integer.")
            return default
        number = int(Decimal(str(value).strip()))
        if minimum is not None and maximum is not None and not minimum <= number <= maximum:
            self.add(
                name,
                "rest_out_of_bounds",
                f"{name} must be between {minimum} (inclusive) and {maximum} (inclusive)",
            )
        elif minimum is not None and maximum is None and number < minimum:
            self.add(
                name, "rest_out_of_bounds", f"{name} must be greater than or equal to {minimum}"
            )
        return number

    def enum(self, req: Request, name: str, default: str, allowed: Iterable[str]) -> str:
        value = req.param(name)
        if value is None:
            return default
        options = list(allowed)
        if not isinstance(value, str) or value not in options:
            self.add(name, "rest_not_in_enum", f"{name} is not one of {l_list(options)}.")
            return default
        return value

    def enum_list(
        self, req: Request, name: str, default: list[str], allowed: Iterable[str]
    ) -> list[str]:
        value = req.param(name)
        if value is None:
            return list(default)
        items = wp_list(value)
        options = list(allowed)
        for index, item in enumerate(items):
            if item not in options:
                self.add(
                    name, "rest_not_in_enum", f"{name}[{index}] is not one of {l_list(options)}."
                )
                break
        return items

    def int_list(self, req: Request, name: str) -> list[int]:
        items = wp_list(req.param(name))
        result = []
        for index, item in enumerate(items):
            if not is_integer(item):
                self.add(name, "rest_invalid_type", f"{name}[{index}] is not of type integer.")
                return []
            result.append(int(Decimal(item)))
        return result

    def boolean(self, req: Request, name: str, default: bool) -> bool:
        value = req.param(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            if value in (0, 1):
                return bool(value)
        elif isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        self.add(name, "rest_invalid_type", f"{name} is not of type boolean.")
        return default

    def date(self, req: Request, name: str) -> tuple[datetime, bool] | None:
        """(moment, has_offset): an aware moment when the value had an offset, else naive."""
        value = req.param(name)
        if value is None:
            return None
        match = _DATE_RE.match(str(value))
        moment: datetime | None = None
        if match:
            try:
                year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
                moment = datetime(year, month, day, hour, minute, second)  # noqa: DTZ001
            except ValueError:
                moment = None
        if moment is None or match is None:
            self.add(name, "rest_invalid_date", "Invalid date.")
            return None
        offset = match.group(7)
        if offset is None:
            return moment, False
        if offset == "Z":
            return moment.replace(tzinfo=UTC), True
        sign = 1 if offset[0] == "+" else -1
        hours, minutes = int(offset[1:3]), int(offset[4:6]) if len(offset) > 3 else 0
        return moment.replace(tzinfo=timezone(sign * timedelta(hours=hours, minutes=minutes))), True


def json_response(status: int, body: Any, headers: Iterable[tuple[str, str]] = ()) -> Response:
    return Response(
        status, wp_json(body), [("Content-Type", _JSON_TYPE), *_COMMON_HEADERS, *headers]
    )


def html_response(
    status: int, title: str, text: str, headers: Iterable[tuple[str, str]] = ()
) -> Response:
    page = (
        '<!DOCTYPE html>\n<html lang="en-US">\n<head>\n<meta charset="UTF-8" />\n'
        f"<title>{title}</title>\n</head>\n<body>\n<h1>{title}</h1>\n<p>{text}</p>\n</body>\n</html>\n"
    )
    return Response(status, page.encode(), [("Content-Type", "text/html; charset=UTF-8"), *headers])


def parse_body(content_type: str, body: bytes) -> tuple[dict[str, Any], Any, str | None]:
    """(``$_POST``, JSON body, JSON error) of a request body."""
    if body and "application/x-www-form-urlencoded" in content_type:
        form = php_parse(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        return form, None, None
    if body and "json" in content_type:
        try:
            return {}, json.loads(body), None
        except ValueError:
            return {}, None, "Syntax error"
    return {}, None, None


def effective_method(method: str, headers: Message, query: Mapping[str, Any]) -> str:
    """A POST may stand for another method (``X-HTTP-Method-Override`` or ``_method``)."""
    override = headers.get("X-HTTP-Method-Override") or (
        query.get("_method") if isinstance(query.get("_method"), str) else None
    )
    if method == "POST" and override:
        return override.upper()
    return method


def meta_param(req: Request, invalid: Invalid) -> Any:
    """``meta_data`` of an update: a list (or PHP-style dict) of objects."""
    meta = req.param("meta_data")
    if meta is None:
        return None
    items = list(meta.values()) if isinstance(meta, dict) else meta
    if not isinstance(items, list):
        invalid.add("meta_data", "rest_invalid_type", "meta_data is not of type array.")
        return meta
    for index, entry in enumerate(items):
        if not isinstance(entry, dict):
            invalid.add(
                "meta_data", "rest_invalid_type", f"meta_data[{index}] is not of type object."
            )
            break
    return items


@dataclass(frozen=True)
class ListQuery:
    """The collection parameters the orders and refunds lists share."""

    page: int
    per_page: int
    after: tuple[datetime, bool] | None
    before: tuple[datetime, bool] | None
    modified_after: tuple[datetime, bool] | None
    modified_before: tuple[datetime, bool] | None
    dates_are_gmt: bool
    exclude: list[int]
    include: list[int]
    offset: int | None
    direction: str
    orderby: str
    parent: list[int]
    parent_exclude: list[int]

    def admits(self, item_id: int, parent_id: int) -> bool:
        """``include``/``exclude`` by id and ``parent``/``parent_exclude`` by parent id."""
        if (self.include and item_id not in self.include) or item_id in self.exclude:
            return False
        return not (
            (self.parent and parent_id not in self.parent) or parent_id in self.parent_exclude
        )

    @property
    def descending(self) -> bool:
        """post__in order (orderby=include) ignores the direction, as WP_Query does."""
        return self.direction == "desc" and not (self.orderby == "include" and self.include)

    def window(self, items: list[dict[str, Any]]) -> tuple[int, int, list[dict[str, Any]]]:
        """(total, pages, the items of the page asked for, ``offset`` first)."""
        total = len(items)
        pages = math.ceil(total / self.per_page)
        start = self.offset if self.offset is not None else (self.page - 1) * self.per_page
        return total, pages, items[start : start + self.per_page]


def list_query(req: Request, invalid: Invalid, *, with_modified: bool) -> ListQuery:
    """Read the shared list parameters in WordPress's order (errors go to ``invalid``)."""
    page = invalid.integer(req, "page", 1, minimum=1) or 1
    per_page = invalid.integer(req, "per_page", 10, minimum=1, maximum=100) or 10
    after = invalid.date(req, "after")
    before = invalid.date(req, "before")
    modified_after = invalid.date(req, "modified_after") if with_modified else None
    modified_before = invalid.date(req, "modified_before") if with_modified else None
    return ListQuery(
        page=page,
        per_page=per_page,
        after=after,
        before=before,
        modified_after=modified_after,
        modified_before=modified_before,
        dates_are_gmt=invalid.boolean(req, "dates_are_gmt", False),
        exclude=invalid.int_list(req, "exclude"),
        include=invalid.int_list(req, "include"),
        offset=invalid.integer(req, "offset", None),
        direction=invalid.enum(req, "order", "desc", ("asc", "desc")),
        orderby=invalid.enum(
            req, "orderby", "date", ("date", "id", "include", "title", "slug", "modified")
        ),
        parent=invalid.int_list(req, "parent"),
        parent_exclude=invalid.int_list(req, "parent_exclude"),
    )
