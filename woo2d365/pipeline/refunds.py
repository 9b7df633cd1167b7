"""``refunds``: a follow-up step (docs/architecture.md, "Follow-ups"); not built yet."""

from __future__ import annotations

from woo2d365.erp.base import ErpTarget
from woo2d365.pipeline.context import RunContext
from woo2d365.pipeline.followup import FollowUpOptions, FollowUpResult
from woo2d365.shop.client import WooClient


def run(
    ctx: RunContext, shop: WooClient, erp: ErpTarget, options: FollowUpOptions
) -> FollowUpResult:
    """Nothing yet."""
    return FollowUpResult(step="refunds", dry_run=options.dry_run)
