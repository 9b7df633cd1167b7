"""``sync`` end to end: the real CLI in a subprocess against both emulators over HTTPS."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

from tests.e2e.conftest import run_woo2d365
from woo2d365.sandbox.world import UNMAPPED, Sandbox
from woo2d365.shop.client import SALES_ORDER_META_KEY, write_back_note
from woo2d365.store import open_store


def _external_numbers(sandbox: Sandbox) -> Counter[str]:
    return Counter(o["externalDocumentNumber"] for o in sandbox.bc.sales_orders())


def _status(sandbox: Sandbox) -> dict:
    result = run_woo2d365(sandbox, "status", "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_sync_pushes_resolvable_orders_once_and_holds_the_rest_until_mapped(
    sandbox: Sandbox,
) -> None:
    first = run_woo2d365(sandbox, "sync")
    assert first.exit_code == 1, first.stderr  # some orders were held
    summary, *named = first.stdout.strip().splitlines()
    assert summary.startswith("sync run 1: ") and "held" in summary, "a summary line (no TTY)"
    status = _status(sandbox)
    held = {o["woo_id"]: o["reason"] for o in status["orders"] if o["state"] == "held"}
    assert named[0] == f"held: {len(held)} orders (woo2d365 status --state held)"
    assert named[1:] == [f"  order {i}: {held[i]}" for i in sorted(held)][:5], "then each, why"
    for unmapped in UNMAPPED:
        assert any(unmapped.product.sku in reason for reason in held.values()), unmapped
    pushed = [o for o in status["orders"] if o["state"] == "pushed"]
    assert pushed and all(o["d365_number"] for o in pushed)
    assert set(_external_numbers(sandbox).values()) == {1}, "no sales order twice"

    listed = run_woo2d365(sandbox, "map-sku", "list", "--unmapped", "--json")
    unmapped_json = json.loads(listed.stdout)
    assert {u["sku"] for u in unmapped_json} >= {u.product.sku for u in UNMAPPED}
    for unmapped in UNMAPPED:
        added = run_woo2d365(sandbox, "map-sku", "add", unmapped.product.sku, unmapped.item_number)
        assert added.exit_code == 0, added.stderr

    second = run_woo2d365(sandbox, "sync")
    assert second.exit_code == 0, second.stderr
    after = _status(sandbox)
    state_of = {o["woo_id"]: o["state"] for o in after["orders"]}
    released = [i for i, reason in held.items() if any(u.product.sku in reason for u in UNMAPPED)]
    assert released and all(state_of[i] == "pushed" for i in released)
    counts = _external_numbers(sandbox)
    assert set(counts.values()) == {1}, "still no sales order twice"
    assert after["counts"]["pushed"] == len(counts)
    third = run_woo2d365(sandbox, "sync")
    assert third.exit_code == 0, "nothing new needs attention: " + third.stdout + third.stderr
    assert _external_numbers(sandbox) == counts, "a third run creates nothing"


def test_a_second_sync_while_one_holds_the_lock_exits_4_and_changes_nothing(
    sandbox: Sandbox,
) -> None:
    store = open_store(f"sqlite:///{sandbox.state_path}")
    assert store.acquire_lock("sync", "another-host:1", datetime.now(UTC), ttl_seconds=300)
    result = run_woo2d365(sandbox, "sync")
    assert result.exit_code == 4
    assert "lock" in result.stderr
    assert store.counts()["new"] == 0 and store.last_run("sync") is None
    assert sandbox.bc.sales_orders() == []
    store.close()


def test_an_expired_lock_of_a_dead_run_does_not_block(sandbox: Sandbox) -> None:
    store = open_store(f"sqlite:///{sandbox.state_path}")
    long_ago = datetime(2026, 1, 1, tzinfo=UTC)
    assert store.acquire_lock("sync", "dead-host:1", long_ago, ttl_seconds=300)
    store.close()
    assert run_woo2d365(sandbox, "sync").exit_code == 1  # unmapped SKUs held


def test_with_the_shop_down_already_pulled_orders_are_still_pushed(sandbox: Sandbox) -> None:
    pulled = run_woo2d365(sandbox, "pull")
    assert pulled.exit_code == 0, pulled.stderr
    sandbox.shop.stop()
    result = run_woo2d365(sandbox, "sync")
    assert result.exit_code == 3, result.stdout + result.stderr
    assert "WooCommerce could not be reached" in result.stdout
    assert len(sandbox.bc.sales_orders()) > 0


def test_with_dynamics_down_pulling_still_happens_and_nothing_is_lost(sandbox: Sandbox) -> None:
    sandbox.bc.stop()
    result = run_woo2d365(sandbox, "sync")
    assert result.exit_code == 3, result.stdout + result.stderr
    counts = _status(sandbox)["counts"]
    assert counts["new"] > 0 and counts["pushed"] == 0 and counts["pushing"] == 0


def test_push_dry_run_prints_the_exact_payloads_and_writes_nothing(sandbox: Sandbox) -> None:
    assert run_woo2d365(sandbox, "pull").exit_code == 0
    assert run_woo2d365(sandbox, "validate").exit_code == 1
    before = _status(sandbox)
    result = run_woo2d365(sandbox, "push", "--dry-run")
    assert result.exit_code == 0, result.stderr
    payloads = json.loads(result.stdout)
    assert payloads and all(p["externalDocumentNumber"].startswith("WC-") for p in payloads)
    assert all("salesOrderLines" in p for p in payloads)
    assert sandbox.bc.sales_orders() == []
    assert _status(sandbox)["counts"] == before["counts"]


def test_sync_dry_run_names_each_sales_order_and_writes_nothing(sandbox: Sandbox) -> None:
    result = run_woo2d365(sandbox, "sync", "--dry-run")
    assert result.exit_code == 1, result.stderr  # some orders would be held
    assert "would create sales order WC-" in result.stdout
    assert "would be held" in result.stdout
    assert sandbox.bc.sales_orders() == []
    assert _status(sandbox)["counts"]["new"] == 0


def test_retry_failed_orders_go_through_on_the_next_push(sandbox: Sandbox) -> None:
    assert run_woo2d365(sandbox, "pull").exit_code == 0
    run_woo2d365(sandbox, "validate")
    ready = [o["woo_id"] for o in _status(sandbox)["orders"] if o["state"] == "ready"]
    target = ready[0]
    sandbox.bc.fail_next(
        1,
        status=400,
        code="Application_FieldValidationException",
        message="Customer Posting Group must have a value",
        method="POST",
        path_contains="salesOrders",
    )
    first = run_woo2d365(sandbox, "push", "--order", str(target))
    assert first.exit_code == 1
    failed = json.loads(run_woo2d365(sandbox, "status", str(target), "--json").stdout)
    assert failed["state"] == "failed" and "Posting Group" in failed["reason"]
    retried = run_woo2d365(sandbox, "retry", str(target), "--now")
    assert retried.exit_code == 0, retried.stdout + retried.stderr
    detail = json.loads(run_woo2d365(sandbox, "status", str(target), "--json").stdout)
    assert detail["state"] == "pushed" and detail["attempts"] == 1
    assert any(e["step"] == "retry" for e in detail["events"])


def test_dynamics_refusing_every_create_for_now_is_exit_3_never_ok(sandbox: Sandbox) -> None:
    """503 past the retry policy: nothing pushed, nothing lost, run again later (exit 3); the
    run's outcome is not ``ok``, so monitoring does not call it a success."""
    sandbox.bc.fail_next(
        10_000,
        status=503,
        code="Internal_ServiceUnavailable",
        method="POST",
        path_contains="salesOrders",
    )
    result = run_woo2d365(sandbox, "sync")
    assert result.exit_code == 3, result.stdout + result.stderr
    assert sandbox.bc.sales_orders() == []
    status = _status(sandbox)
    assert status["last_sync"]["outcome"] == "unreachable"
    assert status["counts"]["ready"] > 0 and status["counts"]["failed"] == 0
    check = run_woo2d365(sandbox, "status", "--check")
    assert check.exit_code != 0, check.stdout

    sandbox.bc.clear_faults()
    again = run_woo2d365(sandbox, "sync")
    assert again.exit_code == 0, again.stdout + again.stderr  # held orders were held before
    assert _status(sandbox)["counts"]["ready"] == 0


def test_quiet_sync_prints_only_when_something_needs_attention(sandbox: Sandbox) -> None:
    first = run_woo2d365(sandbox, "--quiet", "sync")
    assert first.exit_code == 1 and "held" in first.stdout, "held orders need attention"
    second = run_woo2d365(sandbox, "--quiet", "sync")
    assert second.exit_code == 0, second.stdout + second.stderr
    assert second.stdout == "" and second.stderr == "", "nothing new: cron mails nothing"


def test_write_back_is_a_note_per_order_and_one_batch_request_for_the_meta(
    sandbox: Sandbox,
) -> None:
    result = run_woo2d365(sandbox, "sync")
    assert result.exit_code == 1, result.stderr  # unmapped SKUs held
    status = _status(sandbox)
    pushed = {o["woo_id"]: o["d365_number"] for o in status["orders"] if o["state"] == "pushed"}
    assert 1 < len(pushed) <= 100
    for woo_id, number in pushed.items():
        meta = {m["key"]: m["value"] for m in sandbox.shop.get_order(woo_id)["meta_data"]}
        assert meta[SALES_ORDER_META_KEY] == number
        notes = [n for n in sandbox.shop.notes[woo_id] if n["note"] == write_back_note(number)]
        assert len(notes) == 1
    writes = Counter(
        (r.method, "batch" if r.path.endswith("/batch") else r.path.rsplit("/", 1)[-1])
        for r in sandbox.shop.requests
        if r.method != "GET"
    )
    assert writes == {("POST", "notes"): len(pushed), ("POST", "batch"): 1}
    store = open_store(f"sqlite:///{sandbox.state_path}")
    assert store.write_back_pending_ids() == []
    store.close()
