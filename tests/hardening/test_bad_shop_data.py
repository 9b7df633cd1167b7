"""The bad shop data corpus through the real pipeline: ``sync`` in a subprocess, both emulators.

Every corpus order (``tests/fixtures/bad_orders.py``) is either in Dynamics, normalised and with a
warning event that says what changed, or held with a reason a shop manager understands; good
orders before and after it in the same run go through; a second run changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.bad_orders import BadOrder, bad_order_corpus
from tests.fixtures.cli import (
    assert_nothing_twice,
    run_cli,
    running_sandbox,
    sales_orders_by_external_number,
    unexpected_tracebacks,
)
from woo2d365.model import OrderState
from woo2d365.sandbox.shop_data import DEFAULT_BILLING, build_order, product_by_sku
from woo2d365.sandbox.world import Sandbox
from woo2d365.store import SqlStore, open_store

TOLERANCE = Decimal("0.01")


def good_orders(sandbox: Sandbox) -> list[dict[str, Any]]:
    """Plain orders with ids before and after the corpus, created around it."""
    created = sandbox.start_gmt + timedelta(hours=29)
    orders = []
    for index, woo_id in enumerate((4001, 4002, 6001, 6002)):
        orders.append(
            build_order(
                woo_id,
                items=[(product_by_sku("WIDGET-001"), 1 + index), (product_by_sku("STROOP-8"), 2)],
                created_gmt=created + timedelta(hours=index * 2),
                shipping=Decimal("4.09"),
                billing={**DEFAULT_BILLING, "email": f"good{woo_id}@example.nl"},
            )
        )
    return orders


@pytest.fixture
def corpus_run(tmp_path: Path) -> Iterator[tuple[Sandbox, list[BadOrder], list[dict[str, Any]]]]:
    """A sandbox shop holding the corpus and good orders, after one ``sync``."""
    with running_sandbox(tmp_path / "sandbox", orders=0, unmapped_orders=0) as sandbox:
        corpus = bad_order_corpus(sandbox.start_gmt + timedelta(hours=30))
        good = good_orders(sandbox)
        sandbox.shop.add_orders([*good, *(case.raw for case in corpus)])
        first = run_cli(sandbox, "-v", "sync")  # -v: a bug would show its traceback
        assert first.exit_code == 1, first.stdout + first.stderr  # orders were held
        assert "internal error" not in first.stderr, first.stderr
        assert not unexpected_tracebacks(first.stderr), first.stderr
        yield sandbox, corpus, good


def _store(sandbox: Sandbox) -> SqlStore:
    return open_store(f"sqlite:///{sandbox.state_path}")


def _warnings(store: SqlStore, woo_id: int) -> list[str]:
    return [e.message for e in store.events(woo_id) if e.level != "info"]


def _check_pushed(
    store: SqlStore, case: BadOrder, sales_orders: dict[str, list[dict[str, Any]]]
) -> None:
    record = store.get_order(case.woo_id)
    assert record is not None and record.state is OrderState.PUSHED, (case.name, record)
    documents = sales_orders.get(record.external_number or "", [])
    assert len(documents) == 1, f"{case.name}: {len(documents)} sales orders"
    document = documents[0]
    assert document["number"] == record.d365_number
    warnings = _warnings(store, case.woo_id)
    for words in case.expect:
        assert any(words.lower() in w.lower() for w in warnings), (case.name, words, warnings)
    if case.check is not None:
        case.check(document)
    difference = abs(Decimal(str(document["totalAmountIncludingTax"])) - Decimal(case.raw["total"]))
    if difference > TOLERANCE:  # Business Central rounds VAT per document: then it must say so
        assert any("differs from the shop total" in w for w in warnings), (case.name, difference)


def test_each_bad_order_is_pushed_normalised_or_held_with_a_reason_and_never_stops_the_others(
    corpus_run: tuple[Sandbox, list[BadOrder], list[dict[str, Any]]],
) -> None:
    sandbox, corpus, good = corpus_run
    store = _store(sandbox)
    sales_orders = sales_orders_by_external_number(sandbox)
    try:
        for raw in good:
            record = store.get_order(raw["id"])
            assert record is not None and record.state is OrderState.PUSHED, raw["id"]
        problems = []
        for case in corpus:
            record = store.get_order(case.woo_id)
            assert record is not None, case.name
            if case.outcome == "pushed":
                try:
                    _check_pushed(store, case, sales_orders)
                except AssertionError as exc:
                    problems.append(f"{case.name}: {exc}")
                continue
            if record.state.value != case.outcome or not all(
                words.lower() in (record.reason or "").lower() for words in case.expect
            ):
                problems.append(f"{case.name}: {record.state.value}: {record.reason}")
        assert not problems, "\n".join(problems)
    finally:
        store.close()
    assert_nothing_twice(sandbox)


def test_a_second_run_leaves_held_bad_orders_held_and_sends_nothing_again(
    corpus_run: tuple[Sandbox, list[BadOrder], list[dict[str, Any]]],
) -> None:
    sandbox, corpus, _ = corpus_run
    store = _store(sandbox)
    try:
        held_before = {
            case.woo_id: store.get_order(case.woo_id) for case in corpus if case.outcome == "held"
        }
        created_before = len(sandbox.bc.sales_orders())
        second = run_cli(sandbox, "sync")
        assert second.exit_code == 0, second.stdout + second.stderr  # nothing new needs attention
        assert len(sandbox.bc.sales_orders()) == created_before
        for woo_id, before in held_before.items():
            after = store.get_order(woo_id)
            assert before is not None and after is not None
            assert after.state is OrderState.HELD and after.reason == before.reason, woo_id
            # Data that cannot be sent is never claimed for a push (no held → ready → held loop).
            assert after.attempts == 0, (woo_id, after.reason)
    finally:
        store.close()
    assert_nothing_twice(sandbox)
