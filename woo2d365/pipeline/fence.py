"""The fence around one create: the claim is confirmed before every send.

docs/architecture.md, "Exactly once", step 3: a pusher that lost its run lease or its claim
sends nothing; each send renews the claim and records its time, and an answer that proves the
request never ran puts the previous send time back. Orders (``pipeline/push.py``) and refunds
(``pipeline/refunds.py``) are fenced by the same rule over their own store rows.

The store write is made before the request waits for its Dynamics request slot, so no slot is
held for it: the claim is renewed and the send stamped with the *latest* moment the request may
leave (now + :attr:`ClaimFence.window`, so the request-limit wait of an order in doubt never
counts from before the request was handed to its connection). Inside the slot the request
leaves only if that moment has not passed, on the run's clock and on the monotonic one (a wall
clock set back must not stretch the window); after a longer wait (the pace) the claim is
confirmed again there. The window is at most a quarter of the claim's time-out, so no other
process can take the claim over before it runs out. A process killed while a create waits for
its slot leaves that order stamped as sent: the next run looks it up and waits the request
limit before sending it again, as for a create that was in flight.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from woo2d365.errors import ClaimLost
from woo2d365.pipeline.context import RunContext

WINDOW_SECONDS = 1.0  # the longest a confirmation made before the slot lets the request wait


class ClaimFence:
    """A :class:`~woo2d365.erp.base.SendGuard` over one claimed row.

    ``confirm(now, until)`` renews the claim at ``now`` and stamps the send as made by
    ``until`` (False: the claim is another's); ``restore(previous)`` puts the row's previous
    send time back; ``taken`` is what a lost claim says.
    """

    def __init__(
        self,
        ctx: RunContext,
        *,
        confirm: Callable[[datetime, datetime], bool],
        restore: Callable[[datetime | None], object],
        previous: datetime | None,
        taken: str,
    ) -> None:
        self.ctx = ctx
        self._confirm, self._restore, self._taken = confirm, restore, taken
        self.previous_send = previous
        self.sent_at: datetime | None = None  # the stamp of the current send: it left by then
        self._leave_by = 0.0  # the same moment on the monotonic clock
        quarter = ctx.settings.dynamics.timeout_seconds / 4
        self.window = timedelta(seconds=min(WINDOW_SECONDS, quarter))

    def before_slot(self) -> None:
        """Refuse when the run lost its lease or the claim; else renew it and stamp the send."""
        self._check_lease()
        if self.sent_at is not None:
            self.previous_send = self.sent_at
        self._confirm_until()

    def before_send(self) -> None:
        """Refuse when the run lost its lease; confirm again when the stamp's moment has passed."""
        self._check_lease()
        late = self.sent_at is None or self.ctx.clock() > self.sent_at
        if late or time.monotonic() > self._leave_by:
            self._confirm_until()

    def not_sent(self) -> None:
        """The send never ran: the row's last send is the one before it."""
        self._restore(self.previous_send)
        self.sent_at = None

    def _check_lease(self) -> None:
        if self.ctx.lease_lost.is_set():
            raise ClaimLost("the run lost its lease: nothing more is sent")

    def _confirm_until(self) -> None:
        now, started = self.ctx.clock(), time.monotonic()
        until = now + self.window
        if not self._confirm(now, until):
            raise ClaimLost(self._taken)
        self.sent_at, self._leave_by = until, started + self.window.total_seconds()
