"""The comparison operators of OData ``$filter`` (``eq ne gt ge lt le``), shared by the
Business Central and the F&O emulators."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}


def compare(op: str, a: Any, b: Any) -> bool:
    """``a op b`` for one of the six OData comparison operators."""
    return bool(COMPARISONS[op](a, b))
