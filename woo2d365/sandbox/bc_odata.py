"""OData v4 query handling for the Business Central emulator.

Parses and applies ``$filter``, ``$select``, ``$orderby``, ``$top``, ``$skip``, ``$count`` and
server-driven paging the way Business Central's OData layer does (``docs/systems.md`` B2):
string literals in single quotes with ``''`` escapes, unquoted GUIDs, dates and
datetimes, case-sensitive comparisons unless ``tolower``/``toupper`` is used, ``OR`` only over one
field, ``in (...)`` only with ``$schemaversion=2.1``. Anything it cannot parse is a 400, never a
silent match-all.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import cmp_to_key
from typing import Any
from urllib.parse import unquote_plus

from woo2d365.sandbox.odata_compare import compare

MAX_PAGE_SIZE = 20000
SUPPORTED_OPTIONS = frozenset(
    {
        "$filter",
        "$select",
        "$expand",
        "$top",
        "$skip",
        "$orderby",
        "$count",
        "$skiptoken",
        "$schemaversion",
    }
)

EDM = {
    "string": "Edm.String",
    "code": "Edm.String",
    "enum": "Edm.String",
    "guid": "Edm.Guid",
    "date": "Edm.Date",
    "datetime": "Edm.DateTimeOffset",
    "decimal": "Edm.Decimal",
    "int": "Edm.Int32",
    "bool": "Edm.Boolean",
    "null": "null",
}
_TEXTUAL = frozenset({"string", "code", "enum"})
_NUMERIC = frozenset({"decimal", "int"})


class ODataError(Exception):
    """A request the server refuses; rendered as ``{"error": {"code", "message"}}``."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def query_syntax_error(detail: str) -> ODataError:
    """The error BC answers for a query option it cannot parse (``BadRequest_NotFound``)."""
    return ODataError(400, "BadRequest_NotFound", f"Bad Request - Error in query syntax. {detail}")


@dataclass(frozen=True)
class FieldSpec:
    """One property of an API entity: its type, AL length and whether the page lets you set it."""

    type: str
    length: int | None = None
    read_only: bool = False
    enum: tuple[str, ...] = ()
    sortable: bool = True


Schema = Mapping[str, FieldSpec]


# ---------------------------------------------------------------------------------------------
# Query string


@dataclass
class QueryOptions:
    """The system query options of one request, decoded."""

    raw_pairs: list[tuple[str, str]] = field(default_factory=list)  # (decoded name, raw "k=v")
    options: dict[str, str] = field(default_factory=dict)
    custom: dict[str, str] = field(default_factory=dict)


def parse_query(raw_query: str) -> QueryOptions:
    """Split a raw query string; ``+`` decodes to a space, as on every real server."""
    result = QueryOptions()
    if not raw_query:
        return result
    for part in raw_query.split("&"):
        if not part:
            continue
        name_raw, _, value_raw = part.partition("=")
        name = unquote_plus(name_raw)
        value = unquote_plus(value_raw)
        result.raw_pairs.append((name, part))
        if name.startswith("$"):
            if name not in SUPPORTED_OPTIONS:
                raise query_syntax_error(f"The query parameter '{name}' is not supported.")
            if name in result.options:
                raise query_syntax_error(f"Query option '{name}' was specified more than once.")
            result.options[name] = value
        else:
            result.custom[name] = value
    return result


def parse_non_negative_int(name: str, value: str) -> int:
    """``$top`` / ``$skip`` values."""
    if not re.fullmatch(r"\d+", value):
        raise query_syntax_error(
            f"Invalid value '{value}' for {name} query option found. "
            f"The {name} query option requires a non-negative integer value."
        )
    return int(value)


def parse_max_page_size(prefer_header: str | None) -> int:
    """``Prefer: odata.maxpagesize=N``; capped at BC's 20,000."""
    if not prefer_header:
        return MAX_PAGE_SIZE
    for pref in prefer_header.split(","):
        key, _, value = pref.strip().partition("=")
        if key.strip().lower() == "odata.maxpagesize":
            value = value.strip().strip('"')
            if re.fullmatch(r"\d+", value) and int(value) > 0:
                return min(int(value), MAX_PAGE_SIZE)
    return MAX_PAGE_SIZE


# ---------------------------------------------------------------------------------------------
# $filter: tokenizer

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![\w-]))
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?
                 (?:Z|[+-]\d{2}:\d{2})(?![\w.:]))
  | (?P<date>\d{4}-\d{2}-\d{2}(?![\w:.-]))
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[mMdDfFlL]?(?![\w.-]))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[(),])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            raise query_syntax_error(f"Syntax error at position {pos} in '{text}'.")
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(_Token(kind, match.group(), pos))
        pos = match.end()
    return tokens


# ---------------------------------------------------------------------------------------------
# $filter: AST

Row = Mapping[str, Any]


Getter = Callable[[Row], Any]


def _either(a: Getter, b: Getter) -> Getter:
    return lambda row: bool(a(row)) or bool(b(row))


def _both(a: Getter, b: Getter) -> Getter:
    return lambda row: bool(a(row)) and bool(b(row))


def _negate(a: Getter) -> Getter:
    return lambda row: not a(row)


def _any_of(checks: list[Getter]) -> Getter:
    return lambda row: any(check(row) for check in checks)


def _constant(value: Any) -> Getter:
    return lambda row: value


def _property(name: str) -> Getter:
    return lambda row: row.get(name)


def _apply_text(inner: Getter, op: Callable[[str], str]) -> Getter:
    def apply(row: Row) -> Any:
        value = inner(row)
        return None if value is None else op(value)

    return apply


@dataclass(frozen=True)
class _Node:
    type: str  # an EDM family key: "string", "bool", ...
    fields: frozenset[str]
    fn: Callable[[Row], Any]


@dataclass(frozen=True)
class Filter:
    """A parsed ``$filter``: a predicate plus the equality tests an index can answer."""

    predicate: Callable[[Row], bool]
    equalities: dict[str, Any]  # field -> literal, from a top-level AND chain of ``eq``
    fields: frozenset[str]  # every property the expression reads


_COMPARE_OPS = {"eq", "ne", "gt", "ge", "lt", "le"}
_OP_NAMES = {
    "eq": "Equal",
    "ne": "NotEqual",
    "gt": "GreaterThan",
    "ge": "GreaterThanOrEqual",
    "lt": "LessThan",
    "le": "LessThanOrEqual",
}
_STRING_FUNCS = {"tolower", "toupper", "trim"}
_BOOL_FUNCS = {"startswith", "endswith", "contains"}


def _literal_value(token: _Token) -> tuple[str, Any]:
    text = token.text
    if token.kind == "string":
        return "string", text[1:-1].replace("''", "'")
    if token.kind == "guid":
        return "guid", text.lower()
    if token.kind == "date":
        try:
            return "date", date.fromisoformat(text)
        except ValueError:
            raise query_syntax_error(f"Unrecognized 'Edm.Date' literal '{text}'.") from None
    if token.kind == "datetime":
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise query_syntax_error(
                f"Unrecognized 'Edm.DateTimeOffset' literal '{text}'."
            ) from None
        return "datetime", value.astimezone(UTC)
    if token.kind == "number":
        body = text.rstrip("mMdDfFlL")
        try:
            number = Decimal(body)
        except InvalidOperation:
            raise query_syntax_error(f"Unrecognized number literal '{text}'.") from None
        kind = "int" if re.fullmatch(r"-?\d+", body) else "decimal"
        return kind, number
    raise query_syntax_error(f"Unexpected token '{text}'.")


class _Parser:
    def __init__(self, text: str, schema: Schema, entity: str, allow_in: bool) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0
        self.schema = schema
        self.entity = entity
        self.allow_in = allow_in

    # -- helpers
    def _peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _next(self) -> _Token:
        token = self._peek()
        if token is None:
            raise query_syntax_error(f"Expression expected at the end of '{self.text}'.")
        self.pos += 1
        return token

    def _expect(self, text: str) -> None:
        token = self._next()
        if token.text != text:
            raise query_syntax_error(f"'{text}' expected at position {token.pos} in '{self.text}'.")

    def _is_keyword(self, word: str) -> bool:
        token = self._peek()
        return token is not None and token.kind == "ident" and token.text == word

    # -- grammar
    def parse(self) -> _Node:
        if not self.tokens:
            raise query_syntax_error("The $filter expression is empty.")
        node = self._or()
        token = self._peek()
        if token is not None:
            raise query_syntax_error(f"Syntax error at position {token.pos} in '{self.text}'.")
        if node.type != "bool":
            raise query_syntax_error(
                "The $filter expression must evaluate to a single boolean value."
            )
        return node

    def _or(self) -> _Node:
        node = self._and()
        while self._is_keyword("or"):
            self.pos += 1
            right = self._and()
            self._require_bool(node, "or")
            self._require_bool(right, "or")
            if len(node.fields | right.fields) > 1:
                raise ODataError(
                    400,
                    "BadRequest_NotSupported",
                    "An 'or' operator over different fields is not supported: "
                    f"{', '.join(sorted(node.fields | right.fields))}.",
                )
            left_fn, right_fn = node.fn, right.fn
            node = _Node(
                "bool",
                node.fields | right.fields,
                _either(left_fn, right_fn),
            )
        return node

    def _and(self) -> _Node:
        node = self._not()
        while self._is_keyword("and"):
            self.pos += 1
            right = self._not()
            self._require_bool(node, "and")
            self._require_bool(right, "and")
            left_fn, right_fn = node.fn, right.fn
            node = _Node(
                "bool",
                node.fields | right.fields,
                _both(left_fn, right_fn),
            )
        return node

    def _not(self) -> _Node:
        if self._is_keyword("not"):
            self.pos += 1
            inner = self._not()
            self._require_bool(inner, "not")
            fn = inner.fn
            return _Node("bool", inner.fields, _negate(fn))
        return self._comparison()

    def _comparison(self) -> _Node:
        left = self._primary()
        token = self._peek()
        if token is not None and token.kind == "ident" and token.text in _COMPARE_OPS:
            self.pos += 1
            right = self._primary()
            return _compare(token.text, left, right)
        if token is not None and token.kind == "ident" and token.text == "in":
            if not self.allow_in:
                raise query_syntax_error(
                    "The 'in' operator is only supported with $schemaversion=2.1."
                )
            self.pos += 1
            return self._in(left)
        if token is not None and token.kind == "ident" and token.text.lower() in _COMPARE_OPS:
            raise query_syntax_error(
                f"Syntax error at position {token.pos} in '{self.text}': operators are lower case."
            )
        return left

    def _in(self, left: _Node) -> _Node:
        self._expect("(")
        values: list[_Node] = []
        while True:
            values.append(self._primary())
            token = self._next()
            if token.text == ")":
                break
            if token.text != ",":
                raise query_syntax_error(f"',' or ')' expected at position {token.pos}.")
        checks = [_compare("eq", left, value) for value in values]
        fields = left.fields
        return _Node("bool", fields, _any_of([c.fn for c in checks]))

    def _primary(self) -> _Node:
        token = self._next()
        if token.text == "(":
            node = self._or()
            self._expect(")")
            return node
        if token.kind == "ident":
            nxt = self._peek()
            if nxt is not None and nxt.text == "(":
                return self._call(token)
            if token.text in ("true", "false"):
                value = token.text == "true"
                return _Node("bool", frozenset(), _constant(value))
            if token.text == "null":
                return _Node("null", frozenset(), _constant(None))
            spec = self.schema.get(token.text)
            if spec is None:
                raise query_syntax_error(
                    f"Could not find a property named '{token.text}' on type "
                    f"'Microsoft.NAV.{self.entity}'."
                )
            name = token.text
            return _Node(spec.type, frozenset({name}), _property(name))
        if token.kind in ("string", "guid", "date", "datetime", "number"):
            kind, value = _literal_value(token)
            return _Node(kind, frozenset(), _constant(value))
        raise query_syntax_error(f"Syntax error at position {token.pos} in '{self.text}'.")

    def _call(self, name_token: _Token) -> _Node:
        name = name_token.text
        args = self._call_args()
        fields = frozenset().union(*(a.fields for a in args)) if args else frozenset()
        build = _FUNCTIONS.get(name)
        if build is None:
            raise query_syntax_error(f"An unknown function with name '{name}' was found.")
        return build(name, args, fields)

    def _call_args(self) -> list[_Node]:
        """The arguments of a function call, up to its closing parenthesis."""
        self._expect("(")
        args: list[_Node] = []
        nxt = self._peek()
        if nxt is not None and nxt.text == ")":
            self.pos += 1
            return args
        while True:
            args.append(self._or())
            token = self._next()
            if token.text == ")":
                return args
            if token.text != ",":
                raise query_syntax_error(f"',' or ')' expected at position {token.pos}.")

    @staticmethod
    def _require_bool(node: _Node, op: str) -> None:
        if node.type != "bool":
            raise query_syntax_error(
                f"The operand of '{op}' must be a boolean expression, found '{EDM[node.type]}'."
            )


_TEXT_OPS: dict[str, Callable[[str], str]] = {
    "tolower": str.lower,
    "toupper": str.upper,
    "trim": str.strip,
}
_MATCHES: dict[str, Callable[[Any, Any], bool]] = {
    "startswith": lambda hay, needle: bool(hay.startswith(needle)),
    "endswith": lambda hay, needle: bool(hay.endswith(needle)),
    "contains": lambda hay, needle: needle in hay,
}


def _no_signature(name: str) -> ODataError:
    return query_syntax_error(f"No function signature for '{name}' matches the args.")


def _text_function(name: str, args: Sequence[_Node], fields: frozenset[str]) -> _Node:
    """``tolower``, ``toupper``, ``trim`` of one textual argument."""
    if len(args) != 1 or args[0].type not in _TEXTUAL:
        raise _no_signature(name)
    return _Node("string", fields, _apply_text(args[0].fn, _TEXT_OPS[name]))


def _match_function(name: str, args: Sequence[_Node], fields: frozenset[str]) -> _Node:
    """``startswith``, ``endswith``, ``contains`` of two textual arguments (null: false)."""
    if len(args) != 2 or any(a.type not in _TEXTUAL for a in args):
        raise _no_signature(name)
    a_fn, b_fn, match = args[0].fn, args[1].fn, _MATCHES[name]

    def check(row: Row) -> bool:
        hay, needle = a_fn(row), b_fn(row)
        if hay is None or needle is None:
            return False
        return match(hay, needle)

    return _Node("bool", fields, check)


_FUNCTIONS: dict[str, Callable[[str, Sequence[_Node], frozenset[str]], _Node]] = {
    **dict.fromkeys(_STRING_FUNCS, _text_function),
    **dict.fromkeys(_BOOL_FUNCS, _match_function),
}


def _compatible(a: str, b: str) -> bool:
    if "null" in (a, b):
        return True
    if a in _TEXTUAL and b in _TEXTUAL:
        return True
    if a in _NUMERIC and b in _NUMERIC:
        return True
    return a == b


def _normalise(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    return value


def _check_comparable(op: str, left: _Node, right: _Node) -> None:
    if not _compatible(left.type, right.type):
        raise query_syntax_error(
            "A binary operator with incompatible types was detected. Found operand types "
            f"'{EDM[left.type]}' and '{EDM[right.type]}' for operator kind '{_OP_NAMES[op]}'."
        )
    if op in ("eq", "ne"):
        return
    if "null" in (left.type, right.type):
        raise query_syntax_error(f"The operator '{op}' cannot be used with null.")
    if "bool" in (left.type, right.type):
        raise query_syntax_error(f"The operator '{op}' cannot be used with Edm.Boolean.")


def _compare(op: str, left: _Node, right: _Node) -> _Node:
    _check_comparable(op, left, right)
    lf, rf = left.fn, right.fn
    ordered = op not in ("eq", "ne")

    def evaluate(row: Row) -> bool:
        a, b = _normalise(lf(row)), _normalise(rf(row))
        if ordered and (a is None or b is None):
            return False
        return compare(op, a, b)

    return _Node("bool", left.fields | right.fields, evaluate)


def _equalities(text: str, schema: Schema) -> dict[str, Any]:
    """Top-level ``field eq 'literal'`` terms joined by ``and`` (for index look-ups only)."""
    tokens = _tokenize(text)
    if any(t.text in ("(", ")", "or", "not", "in") for t in tokens) or len(tokens) % 4 != 3:
        return {}
    result: dict[str, Any] = {}
    for i in range(0, len(tokens), 4):
        a, op, b = tokens[i], tokens[i + 1], tokens[i + 2]
        if i + 3 < len(tokens) and tokens[i + 3].text != "and":
            return {}
        if a.kind == "ident" and a.text in schema and op.text == "eq" and b.kind == "string":
            result[a.text] = b.text[1:-1].replace("''", "'")
    return result


def parse_filter(text: str, schema: Schema, entity: str, *, allow_in: bool = False) -> Filter:
    """Parse a ``$filter`` value against an entity's schema; raise ODataError (400) if invalid."""
    node = _Parser(text, schema, entity, allow_in).parse()
    fn = node.fn
    return Filter(lambda row: bool(fn(row)), _equalities(text, schema), node.fields)


# ---------------------------------------------------------------------------------------------
# $select, $orderby, $expand


def parse_select(value: str | None, schema: Schema, entity: str) -> list[str] | None:
    """The selected property names, or None for all."""
    if value is None:
        return None
    names = [v.strip() for v in value.split(",")]
    if not value.strip() or any(not n for n in names):
        raise query_syntax_error("The $select expression is empty or malformed.")
    if "*" in names:
        return None
    for name in names:
        if name not in schema:
            raise query_syntax_error(
                f"Could not find a property named '{name}' on type 'Microsoft.NAV.{entity}'."
            )
    return names


def parse_orderby(value: str | None, schema: Schema, entity: str) -> list[tuple[str, bool]]:
    """``[(field, descending)]`` from ``$orderby``."""
    if value is None:
        return []
    result: list[tuple[str, bool]] = []
    for part in value.split(","):
        words = part.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1] not in ("asc", "desc")):
            raise query_syntax_error(f"Invalid $orderby expression '{value}'.")
        name = words[0]
        spec = schema.get(name)
        if spec is None:
            raise query_syntax_error(
                f"Could not find a property named '{name}' on type 'Microsoft.NAV.{entity}'."
            )
        result.append((name, len(words) == 2 and words[1] == "desc"))
    return result


def parse_expand(
    value: str | None, navigations: Sequence[str], known_elsewhere: Iterable[str], entity: str
) -> set[str]:
    """Navigation properties to expand; only ``salesOrderLines``-style parts are served."""
    if value is None:
        return set()
    result: set[str] = set()
    for part in value.split(","):
        name = part.strip()
        if "(" in name:
            raise ODataError(
                501,
                "BadRequest_MethodNotImplemented",
                f"Nested query options in $expand ('{name}') are not supported by the sandbox "
                "emulator.",
            )
        if name in navigations:
            result.add(name)
        elif name in known_elsewhere:
            raise ODataError(
                501,
                "BadRequest_MethodNotImplemented",
                f"Expanding '{name}' is not supported by the sandbox emulator.",
            )
        else:
            raise query_syntax_error(
                f"Could not find a property named '{name}' on type 'Microsoft.NAV.{entity}'."
            )
    return result


# ---------------------------------------------------------------------------------------------
# ordering and paging


def _cmp_values(a: Any, b: Any) -> int:
    if a is None and b is None:
        return 0
    if a is None:
        return -1
    if b is None:
        return 1
    a, b = _normalise(a), _normalise(b)
    return int(a > b) - int(a < b)


def sort_rows(rows: Sequence[Row], order: Sequence[tuple[str, bool]]) -> list[Row]:
    """Sort by ``order`` (the last entry should be a unique key)."""
    if not any(desc for _, desc in order):
        return sorted(
            rows,
            key=lambda row: tuple(
                (row.get(name) is not None, _normalise(row.get(name))) for name, _ in order
            ),
        )

    def compare(x: Row, y: Row) -> int:
        for name, desc in order:
            c = _cmp_values(x.get(name), y.get(name))
            if c:
                return -c if desc else c
        return 0

    return sorted(rows, key=cmp_to_key(compare))


def _encode_value(value: Any) -> list[Any]:
    if value is None:
        return ["n"]
    if isinstance(value, bool):
        return ["b", value]
    if isinstance(value, int):
        return ["i", value]
    if isinstance(value, Decimal):
        return ["d", str(value)]
    if isinstance(value, datetime):
        return ["t", value.isoformat()]
    if isinstance(value, date):
        return ["D", value.isoformat()]
    return ["s", str(value)]


def _decode_value(item: list[Any]) -> Any:
    tag = item[0]
    if tag == "n":
        return None
    if tag in ("b", "i", "s"):
        return item[1]
    if tag == "d":
        return Decimal(item[1])
    if tag == "t":
        return datetime.fromisoformat(item[1])
    if tag == "D":
        return date.fromisoformat(item[1])
    raise ValueError(tag)


def encode_skiptoken(key: Sequence[Any], remaining_top: int | None) -> str:
    """An opaque ``$skiptoken``: the sort key of the last row served and what is left of $top."""
    payload = json.dumps({"k": [_encode_value(v) for v in key], "t": remaining_top})
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_skiptoken(token: str) -> tuple[list[Any], int | None]:
    """Inverse of :func:`encode_skiptoken`; a tampered token is a 400."""
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
        key = [_decode_value(v) for v in payload["k"]]
        top = payload["t"]
        if top is not None and not isinstance(top, int):
            raise ValueError("top")
        return key, top
    except (
        ValueError,
        KeyError,
        TypeError,
        IndexError,
        binascii.Error,
        UnicodeDecodeError,
        InvalidOperation,
    ):
        raise query_syntax_error("The $skiptoken value is not valid.") from None


def rows_after(rows: list[Row], order: Sequence[tuple[str, bool]], key: Sequence[Any]) -> list[Row]:
    """The rows (already sorted by ``order``) strictly after ``key``."""
    if len(key) != len(order):
        raise query_syntax_error("The $skiptoken value is not valid.")

    def after(row: Row) -> bool:
        for (name, desc), value in zip(order, key, strict=True):
            c = _cmp_values(row.get(name), value)
            if c:
                return (c < 0) if desc else (c > 0)
        return False

    for index, row in enumerate(rows):
        if after(row):
            return rows[index:]
    return []
