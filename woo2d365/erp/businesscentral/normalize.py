"""Shop text → Business Central field values, by BC's own field rules. Pure functions, no I/O.

Business Central refuses a value longer than its field (``Application_StringExceededLength``),
letters in a phone number, and e-mail addresses its mail check rejects. Webshop data often breaks
all three, and none of them is a reason to stop an order: like Microsoft's own Shopify connector,
texts are cut to the field length, phones keep only ``0123456789 +()/.-``, and an address that
is not an e-mail address is left out. Every change is reported as a warning for the order's events.

Lengths are counted as Business Central counts them: AL texts are .NET strings, so a character
outside the Basic Multilingual Plane (most emoji) takes two of a field's positions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PHONE_CHARACTERS = frozenset("0123456789 +()/.-")
"""Kept in a phone number: Business Central refuses letters; the Shopify connector keeps these
(plus the hyphen, which Business Central accepts and Dutch numbers use: 06-12345678)."""

_SPACES = re.compile(r"\s+")
_EMPTY_BRACKETS = re.compile(r"\(\s*\)")
_PHONE_EDGES = " ./"
_EMAIL = re.compile(
    r"^[^@\s<>(),;:\"\[\]\\]+"  # local part: no spaces, no second @, no separators
    r"@[^@\s<>(),;:\"\[\]\\.]+(?:\.[^@\s<>(),;:\"\[\]\\.]+)+$"  # domain: labels with dots
)


def bc_length(value: str) -> int:
    """The length Business Central sees: UTF-16 code units (an emoji counts 2)."""
    return len(value.encode("utf-16-le", "surrogatepass")) // 2


def cut_to(value: str, limit: int) -> str:
    """The longest start of ``value`` that fits ``limit`` positions (never half an emoji)."""
    units = 0
    for index, char in enumerate(value):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return value[:index]
    return value


def clean_text(value: str) -> str:
    """Whitespace (newlines, tabs, runs of spaces) collapsed to single spaces, ends stripped."""
    return _SPACES.sub(" ", value).strip()


def is_valid_email(value: str) -> bool:
    """True for an address Business Central's e-mail check accepts (one ``@``, a dotted domain)."""
    if not _EMAIL.match(value):
        return False
    local, _, domain = value.partition("@")
    return not (
        local.startswith(".") or local.endswith(".") or ".." in value or domain.startswith("-")
    )


@dataclass
class FieldNormalizer:
    """Normalises values field by field and collects a warning for every change that lost data.

    ``truncated`` keeps ``(label, original)`` of cut texts so the full value can be kept elsewhere
    (a comment line on the document).
    """

    warnings: list[str] = field(default_factory=list)
    truncated: list[tuple[str, str]] = field(default_factory=list)
    _reported: set[tuple[str, int]] = field(default_factory=set, repr=False)

    def _cut(self, label: str, value: str, limit: int) -> str:
        """``value`` cut to ``limit``; the same cut of the same text is reported once."""
        cut = cut_to(value, limit).rstrip()
        if (value, limit) not in self._reported:
            self._reported.add((value, limit))
            # Values are not quoted: warnings reach events and logs, and these are names,
            # streets and phone numbers. The full text stays in the stored shop order.
            self.warnings.append(f"{label} cut to {limit} characters ({bc_length(value)} given)")
        self.truncated.append((label, value))
        return cut

    def text(self, label: str, value: str, limit: int) -> str:
        """A ``Text[limit]`` value: cleaned and cut to ``limit`` characters (with a warning)."""
        cleaned = clean_text(value)
        if bc_length(cleaned) <= limit:
            return cleaned
        return self._cut(label, cleaned, limit)

    def code(self, label: str, value: str, limit: int) -> str:
        """A ``Code[limit]`` value: upper-case like Business Central stores it, cut to ``limit``."""
        return self.text(label, value.upper(), limit)

    def phone(self, label: str, value: str, limit: int = 30) -> str:
        """A phone number with only ``0123456789 +()/.-`` left (tidied), cut to ``limit``."""
        cleaned = clean_text(value)
        kept = "".join(ch for ch in cleaned if ch in PHONE_CHARACTERS)
        kept = clean_text(_EMPTY_BRACKETS.sub(" ", kept)).strip(_PHONE_EDGES)
        if kept != cleaned and (value, -1) not in self._reported:
            self._reported.add((value, -1))
            removed = "".join(sorted({ch for ch in cleaned if ch not in PHONE_CHARACTERS}))
            self.warnings.append(
                f"{label}: removed characters Business Central refuses ({removed!r})"
            )
        if bc_length(kept) > limit:
            return self._cut(label, kept, limit)
        return kept

    def email(self, label: str, value: str, limit: int = 80) -> str:
        """An e-mail address, or ``""`` (with a warning) when it is invalid or too long to keep."""
        cleaned = value.strip()
        if not cleaned:
            return ""
        if not is_valid_email(cleaned):
            self.warnings.append(f"{label} is not a valid e-mail address; left out")
            return ""
        if bc_length(cleaned) > limit:
            self.warnings.append(
                f"{label} is longer than {limit} characters; left out "
                "(a cut address would be wrong)"
            )
            return ""
        return cleaned
