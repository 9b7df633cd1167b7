"""``reconcile`` through the real CLI: a store restored from a backup that lost 10 of 50 pushed
orders, a duplicate planted in Dynamics, a document deleted, totals and write-backs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.e2e.conftest import run_woo2d365
from tests.fixtures.cli import running_sandbox


def test_reconcile_finds_what_a_restored_store_lost_and_fix_adopts_it(tmp_path: Path) -> None:
    with running_sandbox(tmp_path / "sandbox", orders=60, unmapped_orders=0, seed=8) as sandbox:
        first = run_woo2d365(sandbox, "sync", "--limit", "40")
        assert first.exit_code == 1, first.stderr  # some sandbox orders are held
        backup = tmp_path / "backup.db"
        shutil.copy(sandbox.state_path, backup)
        assert run_woo2d365(sandbox, "sync", "--limit", "10").exit_code == 0  # held before
        status = json.loads(run_woo2d365(sandbox, "status", "--json").stdout)
        pushed_later = sorted(
            o["woo_id"] for o in status["orders"] if o["state"] == "pushed"
        )  # all 50, before the loss
        assert len(pushed_later) == 50
        for suffix in ("", "-wal", "-shm"):
            Path(f"{sandbox.state_path}{suffix}").unlink(missing_ok=True)
        shutil.copy(backup, sandbox.state_path)  # the restored backup: 10 pushes forgotten

        documents = sandbox.bc.sales_orders()
        planted = documents[0]
        sandbox.bc.add_sales_order(
            {
                "customerNumber": planted["customerNumber"],
                "externalDocumentNumber": planted["externalDocumentNumber"],
                "salesOrderLines": [
                    {"lineType": "Item", "lineObjectNumber": "WIDGET-001", "quantity": 1}
                ],
            }
        )
        gone = documents[1]
        sandbox.bc.delete_sales_order(gone["number"])

        report = run_woo2d365(sandbox, "reconcile", "--json")
        assert report.exit_code == 1, report.stderr
        found = json.loads(report.stdout)
        assert set(found) >= {
            "adoptable",
            "duplicated",
            "missing_in_dynamics",
            "write_back_missing",
            "total_mismatch",
        }
        assert len(found["adoptable"]) == 10
        assert all(set(f) == {"woo_id", "number", "external_document_number", "d365_numbers",
                              "detail"} for f in found["adoptable"])  # fmt: skip
        assert [f["external_document_number"] for f in found["duplicated"]] == [
            planted["externalDocumentNumber"]
        ]
        assert len(found["duplicated"][0]["d365_numbers"]) == 2
        assert [f["external_document_number"] for f in found["missing_in_dynamics"]] == [
            gone["externalDocumentNumber"]
        ]
        before = len(sandbox.bc.sales_orders())

        fixed = run_woo2d365(sandbox, "reconcile", "--fix")
        assert fixed.exit_code == 1, "the duplicate and the missing one still need a person"
        assert "10 adopted" in fixed.stdout
        assert len(sandbox.bc.sales_orders()) == before, "reconcile never creates nor deletes"
        after = json.loads(run_woo2d365(sandbox, "status", "--json").stdout)
        states = {o["woo_id"]: o["state"] for o in after["orders"]}
        assert all(states[i] == "pushed" for i in pushed_later)
        again = json.loads(run_woo2d365(sandbox, "reconcile", "--json").stdout)
        assert again["adoptable"] == []


def test_an_order_invoiced_in_business_central_is_not_missing_one_deleted_without_posting_is(
    tmp_path: Path,
) -> None:
    with running_sandbox(tmp_path / "sandbox", orders=6, unmapped_orders=0, seed=8) as sandbox:
        assert run_woo2d365(sandbox, "sync").exit_code in (0, 1)
        invoiced, deleted, *_ = sandbox.bc.sales_orders()
        sandbox.bc.ship_and_invoice(invoiced["number"])  # Business Central deletes the order
        sandbox.bc.delete_sales_order(deleted["number"])  # gone without anything posted
        before = len(sandbox.bc.sales_orders())

        report = run_woo2d365(sandbox, "reconcile", "--json")
        assert report.exit_code == 1, report.stderr
        found = json.loads(report.stdout)
        assert [f["external_document_number"] for f in found["missing_in_dynamics"]] == [
            deleted["externalDocumentNumber"]
        ]
        assert not any(
            invoiced["externalDocumentNumber"] == f["external_document_number"]
            for findings in found.values()
            if isinstance(findings, list)
            for f in findings
        ), "an invoiced order is in Dynamics: no finding at all"
        assert run_woo2d365(sandbox, "reconcile", "--fix").exit_code == 1
        assert len(sandbox.bc.sales_orders()) == before, "reconcile --fix creates nothing"

        forced = run_woo2d365(sandbox, "reconcile", "--json")
        assert json.loads(forced.stdout)["missing_in_dynamics"] == found["missing_in_dynamics"]
