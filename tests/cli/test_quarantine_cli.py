"""``retrainer quarantine list|show|release|discard`` through the CLI.

Batches are quarantined in-process by real cycles; the read commands then run as real
processes at once, the operator's decisions in-process (CliRunner), one after another.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from cliproc import cli_all, ok_json
from typer.testing import CliRunner, Result

from conftest import add_batch, synthetic_batch
from retrainer.cli.app import app
from retrainer.orchestrate.cycle import run_cycle
from retrainer.registry import list_events, verify_chain
from retrainer.workspace import Workspace


def folded(text: str) -> str:
    return " ".join(text.split())


def invoke(*args: object) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def setup(make_workspace: Callable[..., Path]) -> tuple[Path, dict[str, int]]:
    """Champion v1, then three bad deliveries: too small, a null storm, unreadable."""
    root = make_workspace()
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
    nulls = synthetic_batch(3, 200, start_day=2)
    nulls.loc[:99, "x1"] = np.nan
    with Workspace.open(root) as ws:
        assert run_cycle(ws, actor="setup").promoted
        add_batch(root, "b2-small", synthetic_batch(2, 30, start_day=1))
        add_batch(root, "b3-nulls", nulls)
        (root / "data" / "batches" / "b4-bad.csv").write_bytes(b"ts,x1\n2024-01-05,\xff\n")
        result = run_cycle(ws, actor="setup")
        ids = {q["key"]: q["id"] for q in result.steps["contract"]["quarantined"]}
    assert set(ids) == {"b2-small.parquet", "b3-nulls.parquet", "b4-bad.csv"}
    return root, ids


def audit(root: Path) -> list[dict[str, Any]]:
    with Workspace.open(root) as ws:
        return ws.db.transaction(
            lambda s: [
                {"actor": e.actor, "action": e.action, "subject": e.subject, "payload": e.payload}
                for e in list_events(s, limit=100_000)
            ]
        )


def test_list_and_show_for_people_and_machines(make_workspace: Callable[..., Path]) -> None:
    root, ids = setup(make_workspace)
    nulls = ids["b3-nulls.parquet"]

    listing, listing_json, show, show_json, missing, wrong_model = cli_all(
        ("quarantine", "list", "toy", "-w", "ws"),
        ("quarantine", "list", "toy", "-w", "ws", "--json"),
        ("quarantine", "show", "toy", nulls, "-w", "ws", "--rows", "2"),
        ("quarantine", "show", "toy", nulls, "-w", "ws", "--json"),
        ("quarantine", "show", "toy", 999, "-w", "ws"),
        ("quarantine", "list", "nobody", "-w", "ws"),
        cwd=root.parent,
    )

    assert listing.returncode == 0, listing.stderr
    text = folded(listing.stdout)
    for key, code in (
        ("b2-small.parquet", "TOO_FEW_ROWS"),
        ("b3-nulls.parquet", "NULL_STORM"),
        ("b4-bad.csv", "UNREADABLE"),
    ):
        assert key in text and code in text
    rows = ok_json(listing_json)
    assert [r["id"] for r in rows] == sorted(ids.values())
    assert {r["status"] for r in rows} == {"quarantined"}

    assert show.returncode == 0, show.stderr
    shown = folded(show.stdout)
    assert f"batch {nulls}: b3-nulls.parquet quarantined" in shown
    assert "NULL_STORM" in shown and "'x1' is 50.0% null (100 of 200 rows)" in shown
    assert "NULL_STORM on x1: first 2 of 100 rows" in shown
    report = ok_json(show_json)
    [storm] = report["failures"]
    assert (storm["check"], storm["column"], storm["count"]) == ("NULL_STORM", "x1", 100)
    assert [r["row"] for r in storm["sample"]] == [0, 1, 2, 3, 4]
    assert all(r["x1"] is None for r in storm["sample"])
    assert report["snapshot"]["row_count"] == 200

    assert missing.returncode == 3 and "has no batch 999" in missing.stderr
    assert wrong_model.returncode == 3 and "not 'nobody'" in wrong_model.stderr


def test_release_and_discard_are_audited_and_decided_once(
    make_workspace: Callable[..., Path],
) -> None:
    root, ids = setup(make_workspace)
    small, nulls, bad = ids["b2-small.parquet"], ids["b3-nulls.parquet"], ids["b4-bad.csv"]
    ws = ["-w", str(root)]

    released = invoke("quarantine", "release", "toy", small, "--reason", "checked by hand", *ws)
    assert released.exit_code == 0, released.output
    assert "released: it is used for training" in folded(released.stdout)
    discarded = invoke(
        "quarantine", "discard", "toy", nulls, "--reason", "sensor fault", "--json", *ws
    )
    assert discarded.exit_code == 0, discarded.output
    record = json.loads(discarded.stdout)
    assert record["status"] == "discarded"
    assert record["reasons"]["review"]["reason"] == "sensor fault"
    assert record["reasons"]["failures"][0]["check"] == "NULL_STORM"  # why stays on record

    again = invoke("quarantine", "release", "toy", nulls, "--reason", "changed my mind", *ws)
    assert again.exit_code == 4
    assert "is discarded, not quarantined" in folded(again.stderr)
    accepted = invoke("quarantine", "release", "toy", 1, "--reason", "x", *ws)
    assert accepted.exit_code == 4 and "is accepted, not quarantined" in folded(accepted.stderr)
    unreadable = invoke("quarantine", "release", "toy", bad, "--reason", "x", *ws)
    assert unreadable.exit_code == 6 and "no rows to release" in folded(unreadable.stderr)
    blank = invoke("quarantine", "discard", "toy", bad, "--reason", "  ", *ws)
    assert blank.exit_code == 2
    no_reason = invoke("quarantine", "discard", "toy", bad, *ws)
    assert no_reason.exit_code == 2 and "--reason" in no_reason.output

    ours = [e for e in audit(root) if e["action"] in ("batch.released", "batch.discarded")]
    assert ours == [
        {
            "actor": "tester",
            "action": "batch.released",
            "subject": f"toy/batch/{small}",
            "payload": {"key": "b2-small.parquet", "reason": "checked by hand"},
        },
        {
            "actor": "tester",
            "action": "batch.discarded",
            "subject": f"toy/batch/{nulls}",
            "payload": {"key": "b3-nulls.parquet", "reason": "sensor fault"},
        },
    ]
    listing = invoke("quarantine", "list", "toy", "--all", "--json", *ws)
    assert {r["id"]: r["status"] for r in json.loads(listing.stdout)} == {
        small: "released",
        nulls: "discarded",
        bad: "quarantined",
    }
    with Workspace.open(root) as opened:
        assert opened.db.transaction(verify_chain).ok
        assert opened.ledger.rows_accepted_after("toy", None) == 400 + 30  # released counts
