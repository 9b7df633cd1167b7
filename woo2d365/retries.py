"""The one retry policy of both HTTP clients (WooCommerce and Business Central).

A failure the client classified as worth another try is tried again after exactly the
``Retry-After`` the server asked for, else after an exponential backoff with full jitter (a random
wait up to ``base × 2^attempt``, at most ``max_backoff_seconds``); at most ``max_tries`` tries
within ``max_elapsed_seconds``. A server that asks for longer than ``max_retry_after_seconds`` is
not waited for: the run gives up and the next one tries again. ``backoff`` drives the loop; the
waits go through an injected ``sleep``, so tests never wait.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

import backoff

log = logging.getLogger("woo2d365")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long requests are tried again."""

    max_tries: int = 5
    base_seconds: float = 1.0
    max_backoff_seconds: float = 30.0
    max_retry_after_seconds: float = 120.0  # a longer Retry-After: give up, the next run retries
    max_elapsed_seconds: float = 300.0

    def backoff_seconds(self, attempt: int) -> float:
        """The wait before try ``attempt + 2`` when the server named none (full jitter)."""
        ceiling = min(self.max_backoff_seconds, self.base_seconds * (2**attempt))
        return random.uniform(0, ceiling)


def retry_after_of(exc: BaseException | None) -> float | None:
    """The ``Retry-After`` (seconds) an error carries, if any."""
    value = getattr(exc, "retry_after", None)
    return None if value is None else float(value)


def log_retry(exc: BaseException, wait: float, tries: int) -> None:
    """``on_retry`` of the Dynamics clients: at info (-v), since a request that then succeeds is
    no news and an outage is said once, by the step that gives up."""
    log.info("Dynamics request failed (try %s), retrying in %.1f s: %s", tries, wait, exc)


def retrying(
    policy: RetryPolicy,
    *,
    retry_on: type[Exception] | tuple[type[Exception], ...],
    is_retryable: Callable[[BaseException], bool] = lambda _exc: True,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[BaseException, float, int], None] | None = None,
) -> Callable[[F], F]:
    """A decorator: call again on ``retry_on`` errors that ``is_retryable`` accepts, by ``policy``.

    ``on_retry(error, wait, tries so far)`` is told before each wait.
    """

    def waits() -> Generator[float, BaseException | None, None]:
        # backoff sends each error in; the wait happens here, through the injected sleep.
        failure = yield 0.0
        attempt = 0
        while True:
            retry_after = retry_after_of(failure)
            wait = retry_after if retry_after is not None else policy.backoff_seconds(attempt)
            attempt += 1
            if on_retry is not None and failure is not None:
                on_retry(failure, wait, attempt)
            sleep(max(0.0, wait))
            failure = yield 0.0

    def give_up(exc: BaseException) -> bool:
        retry_after = retry_after_of(exc)
        too_long = retry_after is not None and retry_after > policy.max_retry_after_seconds
        return too_long or not is_retryable(exc)

    def decorate(function: F) -> F:
        wrapped = backoff.on_exception(
            waits,
            retry_on,
            max_tries=policy.max_tries,
            max_time=policy.max_elapsed_seconds,
            giveup=give_up,
            jitter=None,
            raise_on_giveup=True,
            logger=None,
        )(function)
        return wrapped

    return decorate
