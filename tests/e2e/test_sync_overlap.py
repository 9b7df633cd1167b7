"""``sync`` pushes while it pulls (issue 15 item 2): the real CLI against both emulators, the
shop's order pages gated or failing from the second page on."""

from __future__ import annotations

import time
from collections import Counter

from tests.e2e.conftest import run_woo2d365
from woo2d365.pipeline.pull import CURSOR_KEY
from woo2d365.sandbox.world import Sandbox
from woo2d365.store import open_store

PAGE_SIZE = 5  # 20 orders: several pages


def _small_pages(sandbox: Sandbox) -> None:
    text = sandbox.config_path.read_text(encoding="utf-8")
    assert "[woocommerce]\n" in text
    text = text.replace("[woocommerce]\n", f"[woocommerce]\npage_size = {PAGE_SIZE}\n", 1)
    sandbox.config_path.write_text(text, encoding="utf-8")


def _sales_order_created(sandbox: Sandbox, before: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if len(sandbox.bc.sales_orders()) > before:
            return True
        time.sleep(0.05)
    return False


def test_the_first_sales_order_leaves_before_the_last_page_is_pulled(sandbox: Sandbox) -> None:
    _small_pages(sandbox)
    seen_while_pulling: list[bool] = []
    before = len(sandbox.bc.sales_orders())

    def on_list_page(page: int) -> None:
        # Each later page waits (well within the client's timeout) for a sales order to appear.
        if page >= 2:
            seen_while_pulling.append(_sales_order_created(sandbox, before, seconds=3))

    sandbox.shop.on_list_page = on_list_page
    result = run_woo2d365(sandbox, "sync")

    assert result.exit_code == 1, result.stdout + result.stderr  # some orders are held
    assert any(seen_while_pulling), "a sales order was created while pages remained"
    numbers = Counter(o["externalDocumentNumber"] for o in sandbox.bc.sales_orders())
    assert set(numbers.values()) == {1}, "no sales order twice"
    store = open_store(f"sqlite:///{sandbox.state_path}")
    try:
        counts = store.counts()
        assert counts["new"] == counts["ready"] == counts["pushing"] == 0
        assert counts["pushed"] == len(numbers)
        run = store.last_run("sync")
        assert run is not None and run.outcome == "attention"
        assert run.counts["pull_pages"] > 2 and run.counts["push_pushed"] == len(numbers)
        assert run.counts["validate_ready"] == len(numbers)
        assert store.get_value(CURSOR_KEY), "every page read: the cursor moved"
    finally:
        store.close()


def test_a_shop_failing_mid_pull_still_pushes_what_was_stored_and_exits_3(
    sandbox: Sandbox,
) -> None:
    _small_pages(sandbox)

    # From page 2 on the shop answers 503. Armed while page 1 is served: pages after it are
    # read ahead in parallel, so arming it on a later page would race with the next one.
    def on_list_page(page: int) -> None:
        if page == 1:
            sandbox.shop.fail_next(
                20, status=503, retry_after=1, method="GET", path_prefix="/wp-json/wc/v3/orders"
            )

    sandbox.shop.on_list_page = on_list_page
    result = run_woo2d365(sandbox, "sync")

    assert result.exit_code == 3, result.stdout + result.stderr
    assert "WooCommerce could not be reached" in result.stdout
    store = open_store(f"sqlite:///{sandbox.state_path}")
    try:
        stored = store.counts()
        assert 0 < sum(stored.values()) <= PAGE_SIZE, "only the first page was stored"
        numbers = Counter(o["externalDocumentNumber"] for o in sandbox.bc.sales_orders())
        assert numbers and set(numbers.values()) == {1}
        assert stored["pushed"] == len(numbers) and stored["ready"] == stored["new"] == 0
        run = store.last_run("sync")
        assert run is not None and run.outcome == "unreachable"
        assert run.counts["push_pushed"] == len(numbers)
        assert store.get_value(CURSOR_KEY) is None, "a pull cut short leaves the cursor alone"
    finally:
        store.close()
