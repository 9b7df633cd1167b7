"""What the shop and the Dynamics emulators share: ``with emulator:`` to start and stop one, and
injected faults that count down over the next matching requests."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Protocol, Self, TypeVar


class ServedContext:
    """``with emulator:`` starts it and stops it again."""

    def start(self) -> Self:
        """Bind a free port and serve."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop serving."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class Countdown(Protocol):
    """A fault for the next ``remaining`` matching requests."""

    remaining: int


_CountdownT = TypeVar("_CountdownT", bound=Countdown)


def take_next(
    items: list[_CountdownT], wanted: Callable[[_CountdownT], bool]
) -> _CountdownT | None:
    """The first of ``items`` that is ``wanted``, counted down (and removed when used up)."""
    for item in items:
        if wanted(item):
            item.remaining -= 1
            if item.remaining <= 0:
                items.remove(item)
            return item
    return None
