"""Results in bounded memory: a run keeps the first entries of a kind and counts them all.

A backlog of any size is one run (docs/architecture.md, "Memory"): what a result holds per
order must not grow with it. :class:`KeptList` and :class:`KeptDict` are a list and a dict that
keep their first :data:`KEEP` entries and count every one; ``len()`` (and truth) is the count,
iteration and indexing see the entries kept. Summaries name a few and say "and N more".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

KEEP = 1000  # entries kept of each kind in one run's result; the rest are counted only

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")


class KeptList(list[T]):
    """The first ``keep`` items appended; ``len()`` counts every item appended."""

    def __init__(self, items: Iterable[T] = (), *, keep: int | None = None) -> None:
        super().__init__()
        self.keep = KEEP if keep is None else keep
        self.total = 0
        self.extend(items)

    def append(self, item: T) -> None:
        """Count ``item``; keep it while fewer than ``keep`` are kept."""
        self.total += 1
        if super().__len__() < self.keep:
            super().append(item)

    def extend(self, items: Iterable[T]) -> None:
        """Append each of ``items``."""
        for item in items:
            self.append(item)

    def __len__(self) -> int:
        return self.total

    @property
    def left_out(self) -> int:
        """Items counted but not kept."""
        return self.total - super().__len__()


class KeptDict(dict[K, V]):
    """The first ``keep`` keys set (a kept key takes later values); ``len()`` counts every
    key set, those not kept included."""

    def __init__(self, *, keep: int | None = None) -> None:
        super().__init__()
        self.keep = KEEP if keep is None else keep
        self.total = 0

    def __setitem__(self, key: K, value: V) -> None:
        if key in self:
            super().__setitem__(key, value)
            return
        self.total += 1
        if super().__len__() < self.keep:
            super().__setitem__(key, value)

    def update(self, other: Mapping[K, V]) -> None:  # type: ignore[override]
        """Set each key of ``other``."""
        for key, value in other.items():
            self[key] = value

    def __len__(self) -> int:
        return self.total

    @property
    def left_out(self) -> int:
        """Keys counted but not kept."""
        return self.total - super().__len__()
