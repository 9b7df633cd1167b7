"""``map-sku``: operators keep the SKU → item table from the shell."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tests.cli.conftest import RunCli
from tests.fixtures.cli import unexpected_tracebacks
from woo2d365.store import open_store
from woo2d365.store.base import CachedItem


def test_add_then_list_shows_the_mapping_with_who_and_when(run_cli: RunCli) -> None:
    result = run_cli("map-sku", "add", "WIDGET-001", "1000", "--note", "blue widget")
    assert result.exit_code == 0, result.stderr
    assert "added" in result.stdout
    listed = json.loads(run_cli("map-sku", "list", "--json").stdout)
    assert len(listed) == 1
    assert listed[0]["sku"] == "WIDGET-001" and listed[0]["item_number"] == "1000"
    assert listed[0]["note"] == "blue widget" and listed[0]["updated_by"]
    assert listed[0]["updated_at"].endswith("+00:00")


def test_add_is_an_upsert(run_cli: RunCli) -> None:
    run_cli("map-sku", "add", "WIDGET-001", "1000")
    assert "unchanged" in run_cli("map-sku", "add", "WIDGET-001", "1000").stdout
    assert "updated" in run_cli("map-sku", "add", "WIDGET-001", "1001").stdout
    listed = json.loads(run_cli("map-sku", "list", "--json").stdout)
    assert [(m["sku"], m["item_number"]) for m in listed] == [("WIDGET-001", "1001")]


def test_item_numbers_are_stored_upper_case_like_business_central(run_cli: RunCli) -> None:
    run_cli("map-sku", "add", "shirt-m", "shirt-m")
    listed = json.loads(run_cli("map-sku", "list", "--json").stdout)
    assert listed[0]["sku"] == "shirt-m" and listed[0]["item_number"] == "SHIRT-M"


def test_invalid_values_are_refused_with_one_line_and_exit_2(run_cli: RunCli) -> None:
    for args, expected in (
        (("WIDGET-001 ", "1000"), "whitespace"),
        (("WIDGET-001", ""), "empty"),
        (("WIDGET-001", "X" * 21), "at most 20"),
    ):
        result = run_cli("map-sku", "add", *args)
        assert result.exit_code == 2
        assert expected in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        verbose = run_cli("-v", "map-sku", "add", *args)  # -v would show a bug's traceback
        assert verbose.exit_code == 2, verbose.stderr
        assert not unexpected_tracebacks(verbose.stderr), verbose.stderr
    assert json.loads(run_cli("map-sku", "list", "--json").stdout) == []


def test_remove_deletes_and_reports_an_unknown_sku(run_cli: RunCli) -> None:
    run_cli("map-sku", "add", "WIDGET-001", "1000")
    assert run_cli("map-sku", "remove", "WIDGET-001").exit_code == 0
    missing = run_cli("map-sku", "remove", "WIDGET-001")
    assert missing.exit_code == 2 and "not mapped" in missing.stderr


def test_import_reports_each_outcome_and_bad_lines_never_abort_good_ones(
    run_cli: RunCli, tmp_path: Path
) -> None:
    run_cli("map-sku", "add", "KEEP", "1")
    run_cli("map-sku", "add", "CHANGE", "2")
    source = tmp_path / "map.csv"
    source.write_text(
        "sku,item_number,note\n"
        "NEW-1,1000,first\n"  # line 2 added
        "KEEP,1,\n"  # line 3 unchanged
        "CHANGE,3,moved\n"  # line 4 updated
        " PADDED,1000,\n"  # line 5 rejected
        "TOO-LONG,ABCDEFGHIJKLMNOPQRSTU,\n"  # line 6 rejected
        "ONLY-ONE-FIELD\n"  # line 7 rejected
        "\n"
        "NEW-2,2000,second\n",  # line 9 added
        encoding="utf-8",
    )
    result = run_cli("map-sku", "import", str(source))
    assert result.exit_code == 1, "some lines were rejected"
    assert "2 added, 1 updated, 1 unchanged, 3 rejected" in result.stdout
    assert f"{source}:5: rejected" in result.stderr
    assert f"{source}:6: rejected" in result.stderr
    assert f"{source}:7: rejected" in result.stderr
    skus = {
        m["sku"]: m["item_number"] for m in json.loads(run_cli("map-sku", "list", "--json").stdout)
    }
    assert skus == {"KEEP": "1", "CHANGE": "3", "NEW-1": "1000", "NEW-2": "2000"}


def test_import_refuses_a_file_without_the_header(run_cli: RunCli, tmp_path: Path) -> None:
    source = tmp_path / "map.csv"
    source.write_text("WIDGET,1000\n", encoding="utf-8")
    result = run_cli("map-sku", "import", str(source))
    assert result.exit_code == 2 and "header" in result.stderr


def test_a_conflicting_duplicate_in_one_file_is_rejected_with_the_first_line(
    run_cli: RunCli, tmp_path: Path
) -> None:
    source = tmp_path / "map.csv"
    source.write_text("sku,item_number\nA,1\nA,2\n", encoding="utf-8")
    result = run_cli("map-sku", "import", str(source))
    assert "already mapped to 1 on line 2" in result.stderr


def test_export_writes_what_import_reads(run_cli: RunCli, tmp_path: Path) -> None:
    run_cli("map-sku", "add", "Ünïcode,SKU", "1000", "--note", 'with "quotes"')
    run_cli("map-sku", "add", "B", "2")
    target = tmp_path / "out.csv"
    assert run_cli("map-sku", "export", str(target)).exit_code == 0
    with target.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows == [
        ["sku", "item_number", "note"],
        ["B", "2", ""],
        ["Ünïcode,SKU", "1000", 'with "quotes"'],
    ]
    run_cli("map-sku", "remove", "B")
    again = run_cli("map-sku", "import", str(target))
    assert "1 added, 0 updated, 1 unchanged, 0 rejected" in again.stdout


def test_unmapped_lists_skus_holding_orders_with_the_fix(run_cli: RunCli, state_url: str) -> None:
    from datetime import UTC, datetime

    from woo2d365.model import OrderState
    from woo2d365.store import open_store
    from woo2d365.store.base import PulledOrder

    store = open_store(state_url)
    store.save_pulled_order(
        PulledOrder(
            5, "5", "processing", datetime(2026, 1, 1, tzinfo=UTC), "EUR", "1.00", {"id": 5}
        )
    )
    store.set_state(5, OrderState.HELD, reason="SKU GADGET-9 is not mapped")
    store.set_held_skus(5, ["GADGET-9"])
    store.close()
    assert json.loads(run_cli("map-sku", "list", "--unmapped", "--json").stdout) == [
        {"sku": "GADGET-9", "held_orders": 1}
    ]
    assert "woo2d365 map-sku add GADGET-9 ITEM" in run_cli("map-sku", "list", "--unmapped").stdout
    run_cli("map-sku", "add", "GADGET-9", "1000")
    assert json.loads(run_cli("map-sku", "list", "--unmapped", "--json").stdout) == []


def test_an_item_dynamics_is_not_known_to_have_is_a_warning_or_with_strict_refused(
    run_cli: RunCli, state_url: str
) -> None:
    store = open_store(state_url)
    store.upsert_items(
        [CachedItem(number="1000", id="g-1000", display_name="Widget", blocked=False)]
    )
    store.close()
    known = run_cli("map-sku", "add", "WIDGET-001", "1000")
    assert known.exit_code == 0 and known.stderr == ""
    unknown = run_cli("map-sku", "add", "MUG-DELFTS-BLAUW", "9999-X")
    assert unknown.exit_code == 0 and "added" in unknown.stdout
    assert "9999-X is not among the items mirrored from Dynamics" in unknown.stderr
    strict = run_cli("map-sku", "add", "MUG-2", "9999-Y", "--strict")
    assert strict.exit_code == 2 and "--strict" in strict.stderr
    listed = {m["sku"] for m in json.loads(run_cli("map-sku", "list", "--json").stdout)}
    assert listed == {"WIDGET-001", "MUG-DELFTS-BLAUW"}


def test_a_limit_below_one_is_refused(run_cli: RunCli) -> None:
    for command in ("push", "sync"):
        result = run_cli(command, "--limit", "-1")
        assert result.exit_code == 2, (command, result.stdout, result.stderr)
