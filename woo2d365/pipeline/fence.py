"""The fence around one create: the claim is confirmed right before every send.

docs/architecture.md, "Exactly once", step 3: a pusher that lost its run lease or its claim
sends nothing; each send renews the claim and records its time, and an answer that proves the
request never ran puts the previous send time back. Orders (``pipeline/push.py``) and refunds
(``pipeline/refunds.py``) are fenced by the same rule over their own store rows.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from woo2d365.errors import ClaimLost
from woo2d365.pipeline.context import RunContext


class ClaimFence:
    """A :class:`~woo2d365.erp.base.SendGuard` over one claimed row.

    ``confirm(now)`` renews the claim and stamps the send (False: the claim is another's);
    ``restore(previous)`` puts the row's previous send time back; ``taken`` is what a lost claim
    says.
    """

    def __init__(
        self,
        ctx: RunContext,
        *,
        confirm: Callable[[datetime], bool],
        restore: Callable[[datetime | None], object],
        previous: datetime | None,
        taken: str,
    ) -> None:
        self.ctx = ctx
        self._confirm, self._restore, self._taken = confirm, restore, taken
        self.previous_send = previous
        self.sent_at: datetime | None = None

    def before_send(self) -> None:
        """Refuse when the run lost its lease or the claim; else renew it and stamp the send."""
        if self.ctx.lease_lost.is_set():
            raise ClaimLost("the run lost its lease: nothing more is sent")
        now = self.ctx.clock()
        if not self._confirm(now):
            raise ClaimLost(self._taken)
        if self.sent_at is not None:
            self.previous_send = self.sent_at
        self.sent_at = now

    def not_sent(self) -> None:
        """The send never ran: the row's last send is the one before it."""
        self._restore(self.previous_send)
        self.sent_at = None
