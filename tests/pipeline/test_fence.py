"""The claim fence around a create (docs/architecture.md, "Exactly once", step 3): its store write
is made before the request waits for a slot, and it stands only for a short window."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest

from tests.erp.pipeline_helpers import Clock, make_context
from tests.store.test_store import pulled
from woo2d365.errors import ClaimLost
from woo2d365.model import OrderState
from woo2d365.pipeline.context import RunContext
from woo2d365.pipeline.fence import WINDOW_SECONDS, ClaimFence
from woo2d365.settings import DynamicsSettings, Settings
from woo2d365.store.base import StateStore


def _claimed(store: StateStore, clock: Clock) -> None:
    store.save_pulled_order(pulled(5))
    store.set_state(5, OrderState.READY)
    assert store.claim(5, "test:1", clock(), token="mine", key="WC-5")


def _fence(ctx: RunContext, store: StateStore) -> tuple[ClaimFence, list[datetime]]:
    """The fence push puts around order 5's create, and the times it confirmed the claim."""
    confirmed: list[datetime] = []

    def confirm(now: datetime, until: datetime) -> bool:
        confirmed.append(now)
        return store.confirm_claim(5, "mine", now, sent_at=until)

    fence = ClaimFence(
        ctx,
        confirm=confirm,
        restore=lambda previous: store.set_last_sent(5, "mine", previous),
        previous=None,
        taken="another process holds this order now",
    )
    return fence, confirmed


def test_a_confirmation_before_the_slot_lets_the_request_leave_only_within_its_window(
    store: StateStore,
) -> None:
    clock = Clock()
    ctx = make_context(Settings(), store, clock)
    timeout = ctx.settings.dynamics.timeout_seconds
    _claimed(store, clock)
    fence, confirmed = _fence(ctx, store)
    assert fence.window == timedelta(seconds=WINDOW_SECONDS) < timedelta(seconds=timeout / 4)

    fence.before_slot()
    record = store.get_order(5)
    assert record is not None and record.claimed_at == clock()
    assert record.last_sent_at == clock() + fence.window, "stamped: the latest it may leave"
    clock.advance(WINDOW_SECONDS / 2)
    fence.before_send()  # a slot soon free: the request leaves without a second store write
    assert len(confirmed) == 1

    # A re-send whose slot comes late (the pace): meanwhile the claim ran out and was taken.
    fence.before_slot()
    clock.advance(timeout + 5)
    before = clock() - timedelta(seconds=timeout)
    assert store.claim_in_doubt(5, "other-host:1", clock(), before, token="other")
    with pytest.raises(ClaimLost, match="another process holds this order now"):
        fence.before_send()
    record = store.get_order(5)
    assert record is not None and record.claim_token == "other"


def test_a_wall_clock_set_back_during_the_wait_does_not_stretch_the_window(
    store: StateStore,
) -> None:
    clock = Clock()
    ctx = make_context(Settings(dynamics=DynamicsSettings(timeout_seconds=0.2)), store, clock)
    _claimed(store, clock)
    fence, confirmed = _fence(ctx, store)
    assert fence.window == timedelta(seconds=0.05)  # a quarter of the claim's time-out
    fence.before_slot()
    clock.advance(-60)  # NTP steps the wall clock back while the request waits
    time.sleep(0.1)  # longer than the window, on the monotonic clock
    fence.before_send()
    assert len(confirmed) == 2, "confirmed again inside the slot"
