"""OData v4 query syntax shared by the Dynamics clients: literals, query strings, ``or`` batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from urllib.parse import quote

MAX_FILTER_CHARACTERS = 1500
"""Longest encoded ``$filter`` of a batched lookup: URLs stay well inside common 2 KB limits."""


def odata_string(value: str) -> str:
    """An OData string literal: single quotes, embedded ``'`` doubled."""
    return "'" + value.replace("'", "''") + "'"


def odata_datetime(value: datetime) -> str:
    """An OData ``DateTimeOffset`` literal in UTC (unquoted in filters)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def query_string(params: dict[str, str]) -> str:
    """``?$filter=…`` with every value fully percent-encoded (``+`` → %2B, space → %20)."""
    if not params:
        return ""
    parts = [f"{quote(key, safe='$')}={quote(value, safe='')}" for key, value in params.items()]
    return "?" + "&".join(parts)


def filter_batches(
    field: str,
    values: Sequence[str],
    *,
    max_characters: int = MAX_FILTER_CHARACTERS,
    max_terms: int | None = None,
) -> Iterator[str]:
    """``field eq 'a' or field eq 'b' ...`` filters, each short enough for one URL."""
    terms = [f"{field} eq {odata_string(value)}" for value in dict.fromkeys(values)]
    return term_batches(terms, max_characters=max_characters, max_terms=max_terms)


def term_batches(
    terms: Sequence[str],
    *,
    max_characters: int = MAX_FILTER_CHARACTERS,
    max_terms: int | None = None,
) -> Iterator[str]:
    """Filter terms joined by ``or``, each filter short enough for one URL (duplicates once)."""
    batch: list[str] = []
    length = 0
    for term in dict.fromkeys(terms):
        size = len(quote(term, safe="")) + len(" or ") * 3
        full = max_terms is not None and len(batch) >= max_terms
        if batch and (full or length + size > max_characters):
            yield " or ".join(batch)
            batch, length = [], 0
        batch.append(term)
        length += size
    if batch:
        yield " or ".join(batch)
