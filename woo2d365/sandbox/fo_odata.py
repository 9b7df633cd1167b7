"""OData as Finance & Operations' ``/data`` endpoint speaks it, for the F&O emulator.

Follows ``docs/systems.md`` (F&O) strictly where the tool depends on it:

* ``$filter`` knows ``eq ne gt ge lt le and or not`` and parentheses only: no ``in``, no
  ``has``, no functions (``startswith``, ``contains``…) — each is a 400, never a silent match-all.
* String comparisons ignore case (SQL Server collation) and a ``*`` inside an ``eq`` literal is a
  wildcard, so ``CustomersOrderReference eq 'WC-*'`` is a prefix match.
* Enum fields compare only with qualified literals (``Microsoft.Dynamics.DataEntities.NoYes'Yes'``);
  a plain string literal against an enum is a type error naming the enum.
* Errors have an empty ``error.code``; the detail is in ``innererror`` (message, type, stacktrace).
* ``$batch``: multipart/mixed with changesets; the answer is always 200 (see the emulator).
"""

from __future__ import annotations

import fnmatch
import itertools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from woo2d365.sandbox.odata_compare import compare

ENUM_NAMESPACE = "Microsoft.Dynamics.DataEntities."
WRITE_EXCEPTION = "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException"
ODATA_EXCEPTION = "Microsoft.OData.ODataException"

Row = dict[str, Any]
Predicate = Callable[[Row], bool]


class FoError(Exception):
    """An answer F&O gives instead of a result: OData error shape with an empty ``code``.

    ``plain`` errors are the routing layer's ``{"Message": …}`` bodies (unknown URL, bad key
    segment); ``empty`` errors have no body at all (401).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = ODATA_EXCEPTION,
        headers: Mapping[str, str] | None = None,
        plain: bool = False,
        empty: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.headers = dict(headers or {})
        self.plain = plain
        self.empty = empty

    def document(self) -> dict[str, Any] | None:
        """The JSON body of the answer (None: no body)."""
        if self.empty:
            return None
        if self.plain:
            return {"Message": self.message}
        return {
            "error": {
                "code": "",
                "message": "An error has occurred.",
                "innererror": {
                    "message": self.message,
                    "type": self.kind,
                    "stacktrace": "   at Microsoft.Dynamics.Platform.Integration.Services."
                    "OData.AxODataDelegatingHandler.SendAsync(HttpRequestMessage request)",
                },
            }
        }


def write_error(entity: str, infolog: list[str]) -> FoError:
    """``AxODataWriteException`` with F&O's Infolog message (status set by the caller's context)."""
    text = "; ".join(infolog)
    return FoError(
        400,
        f"Write failed for table row of type '{entity}'. Infolog: {text}.",
        kind=WRITE_EXCEPTION,
    )


def query_error(detail: str) -> FoError:
    """A query option F&O cannot parse."""
    return FoError(400, f"The query specified in the URI is not valid. {detail}")


@dataclass(frozen=True)
class Field:
    """One property: ``string``, ``decimal``, ``int``, ``datetime`` or ``enum`` (with its type)."""

    type: str
    enum: str = ""  # e.g. "NoYes"
    length: int | None = None


Schema = Mapping[str, Field]


# -- $filter ----------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<enum>Microsoft\.Dynamics\.DataEntities\.\w+'(?:[^']|'')*')"
    r"|(?P<string>'(?:[^']|'')*')"
    r"|(?P<number>-?\d+(?:\.\d+)?)"
    r"|(?P<punct>[(),])"
    r"|(?P<word>[A-Za-z_$][\w.]*))"
)
_COMPARISONS = frozenset({"eq", "ne", "gt", "ge", "lt", "le"})


@dataclass
class _Tok:
    kind: str
    text: str


def _tokens(text: str) -> list[_Tok]:
    found: list[_Tok] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise query_error(f"Syntax error at position {position} in '{text}'.")
        kind = match.lastgroup or ""
        found.append(_Tok(kind, match.group(kind)))
        position = match.end()
    return found


@dataclass
class _Value:
    kind: str  # "field" | "string" | "number" | "enum" | "bool"
    value: Any
    enum: str = ""


@dataclass
class _Parser:
    tokens: list[_Tok]
    schema: Schema
    entity: str
    position: int = 0
    fields: set[str] = field(default_factory=set)

    def peek(self) -> _Tok | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> _Tok:
        token = self.peek()
        if token is None:
            raise query_error("Unexpected end of the $filter expression.")
        self.position += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "word" and token.text == word:
            self.position += 1
            return True
        return False

    def parse(self) -> Predicate:
        predicate = self.or_()
        if self.peek() is not None:
            raise query_error(f"Syntax error: unexpected '{self.peek().text}'.")  # type: ignore[union-attr]
        return predicate

    def or_(self) -> Predicate:
        left = self.and_()
        while self.keyword("or"):
            right = self.and_()
            left = _either(left, right)
        return left

    def and_(self) -> Predicate:
        left = self.not_()
        while self.keyword("and"):
            right = self.not_()
            left = _both(left, right)
        return left

    def not_(self) -> Predicate:
        if self.keyword("not"):
            inner = self.not_()
            return lambda row: not inner(row)
        return self.comparison()

    def comparison(self) -> Predicate:
        token = self.peek()
        if token is not None and token.text == "(":
            self.take()
            inner = self.or_()
            if self.take().text != ")":
                raise query_error("')' expected.")
            return inner
        left = self.operand()
        operator = self.take()
        if operator.kind != "word" or operator.text not in _COMPARISONS:
            if operator.text in ("in", "has"):
                raise query_error(f"The '{operator.text}' operator is not supported.")
            raise query_error(f"Syntax error: '{operator.text}' is not a comparison operator.")
        right = self.operand()
        return _compare(operator.text, left, right, self.schema, self.entity)

    def operand(self) -> _Value:
        token = self.take()
        if token.kind == "string":
            return _Value("string", token.text[1:-1].replace("''", "'"))
        if token.kind == "number":
            return _Value("number", Decimal(token.text))
        if token.kind == "enum":
            name, _, literal = token.text[len(ENUM_NAMESPACE) :].partition("'")
            return _Value("enum", literal[:-1].replace("''", "'"), enum=name)
        if token.kind == "word":
            nxt = self.peek()
            if nxt is not None and nxt.text == "(":
                raise query_error(f"The function '{token.text}' is not supported.")
            if token.text in ("true", "false"):
                return _Value("bool", token.text == "true")
            if token.text == "null":
                return _Value("null", None)
            if token.text not in self.schema:
                raise query_error(
                    f"Could not find a property named '{token.text}' on type "
                    f"'{ENUM_NAMESPACE}{self.entity}'."
                )
            return _Value("field", token.text)
        raise query_error(f"Syntax error: unexpected '{token.text}'.")


def _either(a: Predicate, b: Predicate) -> Predicate:
    return lambda row: a(row) or b(row)


def _both(a: Predicate, b: Predicate) -> Predicate:
    return lambda row: a(row) and b(row)


_MIRRORED = {"gt": "lt", "lt": "gt", "ge": "le", "le": "ge"}


def _check_operand(op: str, name: str, spec: Field, right: _Value) -> None:
    """The literal must suit the property's type (enums: only ``eq``/``ne``)."""
    if spec.type == "enum":
        if right.kind != "enum" or right.enum != spec.enum:
            raise query_error(
                f"A binary operator with incompatible types was detected. Found operand types "
                f"'{ENUM_NAMESPACE}{spec.enum}' and 'Edm.String' for operator kind 'Equal'."
            )
        if op not in ("eq", "ne"):
            raise query_error(f"The operator '{op}' is not supported on enum values.")
    elif spec.type == "string" and right.kind not in ("string", "null"):
        raise query_error(f"Property '{name}' is Edm.String; a string literal is required.")
    elif spec.type in ("decimal", "int") and right.kind != "number":
        raise query_error(f"Property '{name}' is numeric; a number literal is required.")


def _text_test(op: str, name: str, wanted: str) -> Predicate:
    """Strings compare case-insensitively; ``*`` in an eq/ne literal is a wildcard."""
    pattern = wanted.casefold()

    def check(row: Row) -> bool:
        text = str(row.get(name) or "").casefold()
        if op not in ("eq", "ne"):
            return compare(op, text, pattern)
        hit = fnmatch.fnmatchcase(text, _glob(pattern)) if "*" in pattern else text == pattern
        return hit if op == "eq" else not hit

    return check


def _number_test(op: str, name: str, wanted: Any) -> Predicate:
    def check(row: Row) -> bool:
        try:
            number = Decimal(str(row.get(name)))
        except InvalidOperation:
            return False
        return compare(op, number, wanted)

    return check


def _equality_test(op: str, name: str, wanted: Any) -> Predicate:
    """Other types (enums, datetimes, null): only eq and ne can hold."""

    def check(row: Row) -> bool:
        hit = row.get(name) == wanted
        return hit if op == "eq" else not hit if op == "ne" else False

    return check


def _compare(op: str, left: _Value, right: _Value, schema: Schema, entity: str) -> Predicate:
    if left.kind != "field":
        left, right = right, left
        op = _MIRRORED.get(op, op)
    if left.kind != "field":
        raise query_error("A comparison needs a property on one side.")
    spec = schema[left.value]
    name = str(left.value)
    _check_operand(op, name, spec, right)
    wanted = right.value
    if spec.type == "string" and isinstance(wanted, str):
        return _text_test(op, name, wanted)
    if spec.type in ("decimal", "int"):
        return _number_test(op, name, wanted)
    return _equality_test(op, name, wanted)


def _glob(pattern: str) -> str:
    """An F&O wildcard literal as an fnmatch pattern: only ``*`` is special."""
    return "".join("*" if c == "*" else f"[{c}]" if c in "[]?" else c for c in pattern)


def parse_filter(text: str, schema: Schema, entity: str) -> Predicate:
    """A predicate for ``$filter``; :class:`FoError` 400 for anything F&O would refuse."""
    return _Parser(_tokens(text), schema, entity).parse()


def parse_select(text: str | None, schema: Schema, entity: str) -> list[str] | None:
    """``$select`` field names, each known."""
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        if name not in schema:
            raise query_error(
                f"Could not find a property named '{name}' on type '{ENUM_NAMESPACE}{entity}'."
            )
    return names


def split_options(query: str) -> tuple[dict[str, str], dict[str, str]]:
    """``($options, custom parameters)`` of a raw query string, percent-decoded."""
    from urllib.parse import unquote

    options: dict[str, str] = {}
    custom: dict[str, str] = {}
    for part in query.split("&") if query else []:
        if not part:
            continue
        name_raw, _, value_raw = part.partition("=")
        name, value = unquote(name_raw), unquote(value_raw.replace("+", "%20"))
        if name.startswith("$"):
            if name in options:
                raise query_error(f"Query option '{name}' was specified more than once.")
            options[name] = value
        else:
            custom[name] = value
    return options, custom


# -- $batch -------------------------------------------------------------------------------------


@dataclass
class BatchRequest:
    """One operation inside a ``$batch``."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    content_id: str = ""


@dataclass
class BatchPart:
    """A changeset (``requests`` run atomically) or one independent request."""

    changeset: bool
    requests: list[BatchRequest]


def _boundary(content_type: str) -> str:
    match = re.search(r'boundary="?([^";]+)"?', content_type, re.IGNORECASE)
    if not match:
        raise FoError(400, "The batch request must have a boundary in its Content-Type.")
    return match.group(1)


def _parts(body: bytes, boundary: str) -> list[bytes]:
    """The parts between ``--boundary`` lines (transport padding after a boundary allowed)."""
    delimiter = re.compile(
        rb"(?:^|\r\n)--" + re.escape(boundary.encode()) + rb"(--)?[ \t]*(?:\r?\n|$)"
    )
    pieces: list[bytes] = []
    matches = list(delimiter.finditer(body))
    if not matches or matches[-1].group(1) is None:
        raise FoError(400, "The batch body is not a complete multipart/mixed document.")
    for current, following in itertools.pairwise(matches):
        if current.group(1) is not None:
            break
        pieces.append(body[current.end() : following.start()])
    return pieces


def _split_head(part: bytes) -> tuple[dict[str, str], bytes]:
    head, _, rest = part.partition(b"\r\n\r\n")
    headers: dict[str, str] = {}
    for line in head.decode("utf-8", "replace").split("\r\n"):
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return headers, rest


def _request(part: bytes) -> BatchRequest:
    outer, inner = _split_head(part)
    if outer.get("content-type", "").split(";")[0].strip().lower() != "application/http":
        raise FoError(400, "Each batch operation must have Content-Type: application/http.")
    request_line, _, rest = inner.partition(b"\r\n")
    words = request_line.decode("utf-8", "replace").split(" ")
    if len(words) != 3 or not words[2].startswith("HTTP/"):
        raise FoError(400, "A batch operation does not start with a request line.")
    headers, body = _split_head(rest if rest.strip() else rest + b"\r\n\r\n")
    content_id = outer.get("content-id") or headers.get("content-id", "")
    return BatchRequest(words[0].upper(), words[1], headers, body.rstrip(b"\r\n"), content_id)


def parse_batch(content_type: str, body: bytes) -> list[BatchPart]:
    """The changesets and independent requests of a multipart ``$batch`` body."""
    if not content_type.lower().startswith("multipart/mixed"):
        raise FoError(400, "A $batch request must be multipart/mixed.")
    result: list[BatchPart] = []
    for part in _parts(body, _boundary(content_type)):
        headers, rest = _split_head(part)
        kind = headers.get("content-type", "")
        if kind.lower().startswith("multipart/mixed"):
            requests = [_request(inner) for inner in _parts(rest, _boundary(kind))]
            for request in requests:
                if request.method == "GET":
                    raise FoError(400, "A changeset may not contain a GET request.")
            result.append(BatchPart(True, requests))
        else:
            result.append(BatchPart(False, [_request(part)]))
    return result


@dataclass
class BatchAnswer:
    """One operation's answer inside the batch response."""

    status: int
    reason: str
    body: bytes
    content_id: str = ""
    headers: dict[str, str] = field(default_factory=dict)


def render_batch(
    groups: list[tuple[bool, list[BatchAnswer]]], batch_id: str, changeset_ids: list[str]
) -> tuple[str, bytes]:
    """``(Content-Type, body)`` of a batch response (``batchresponse_``/``changesetresponse_``)."""
    boundary = f"batchresponse_{batch_id}"
    out: list[bytes] = []
    for index, (changeset, answers) in enumerate(groups):
        out.append(f"--{boundary}\r\n".encode())
        if changeset:
            inner = f"changesetresponse_{changeset_ids[index]}"
            out.append(f"Content-Type: multipart/mixed; boundary={inner}\r\n\r\n".encode())
            for answer in answers:
                out.append(f"--{inner}\r\n".encode())
                out.append(_answer(answer))
            out.append(f"--{inner}--\r\n".encode())
        else:
            out.append(_answer(answers[0]))
    out.append(f"--{boundary}--\r\n".encode())
    return f"multipart/mixed; boundary={boundary}", b"".join(out)


def _answer(answer: BatchAnswer) -> bytes:
    lines = [
        "Content-Type: application/http",
        "Content-Transfer-Encoding: binary",
    ]
    if answer.content_id:
        lines.append(f"Content-ID: {answer.content_id}")
    lines += ["", f"HTTP/1.1 {answer.status} {answer.reason}"]
    if answer.body:
        lines.append("Content-Type: application/json; odata.metadata=minimal")
    lines += [f"{name}: {value}" for name, value in answer.headers.items()]
    lines.append("OData-Version: 4.0")
    text = "\r\n".join(lines) + "\r\n\r\n"
    return text.encode() + answer.body + b"\r\n"
