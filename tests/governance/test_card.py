"""Model cards from stored evidence only (docs/model-cards.md).

Three real cycles on the synthetic workspace, with slices, fairness and robustness
configured: v1 (no champion), v2 (judged against v1, the card's subject, with two
approval rows added: one bound to it, one to another artifact), v3 (so v2 has alias
moves both ways and a batch scored after its training data).

The main test reads the store independently of the card code (version row, snapshots,
reference profile, approvals, batch scores, alias history, spec) and checks that every
number on the rendered card, HTML and Markdown, is one of those stored values as the card
displays it. The checker is shown to fail on a typed-in number, and a metric changed in a
copy of the store changes the card.
"""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from conftest import add_batch, synthetic_batch
from retrainer.deploy.store import RolloutStore
from retrainer.errors import DataSourceError
from retrainer.governance.approvals import decision_sha256
from retrainer.governance.card import CardEvidence, collect_card
from retrainer.governance.card_blocks import NOT_STATED, num
from retrainer.governance.card_render import card_format, render_card, write_card
from retrainer.monitor.drift import ReferenceProfile
from retrainer.orchestrate.cycle import run_cycle
from retrainer.registry.tables import Approval, ModelVersion, Rollout
from retrainer.spec import spec_hash
from retrainer.workspace import Workspace

OWNER = "{{ 7*7 }} <script>alert(1)</script> ml-team"
GATES = """\
  slices: [color]
  fairness: {sensitive: [color], demographic_parity_max: 0.5, equalized_odds_max: 0.5}
  robustness: {max_drop: 0.05, missing_share: 0}
"""

IMAGE = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")
UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
DATE = re.compile(
    r"\b\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?)?(?:[+-]\d{2}:\d{2}| UTC)?"
)
HEX = re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{8,64}\b")
VERSION = re.compile(r"\bv(\d+)\b")
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?(?!\w)")


def tokens(text: str) -> dict[str, list[str]]:
    """Identifiers, dates, hashes, version labels and numbers of ``text``, each kind
    taken out before the next is looked for (a hash's digits are not numbers)."""
    out: dict[str, list[str]] = {}
    for kind, pattern in (("uuid", UUID), ("date", DATE), ("hex", HEX), ("version", VERSION)):
        out[kind] = [
            m.group(1) if kind == "version" else m.group(0) for m in pattern.finditer(text)
        ]
        text = pattern.sub(" ", text)
    out["number"] = NUMBER.findall(text)
    return out


def _iso(date: str) -> str:
    return date.removesuffix(" UTC").replace(" ", "T")


def leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for v in value.values():
            yield from leaves(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from leaves(v)
    else:
        yield value


class Stored:
    """What the store holds, flattened: numbers as the card displays them, and text."""

    def __init__(self, sources: list[Any]) -> None:
        self.numbers: set[str] = set()
        self.text: list[str] = []
        for leaf in leaves(sources):
            if isinstance(leaf, bool) or leaf is None:
                continue
            if isinstance(leaf, int | float):
                self.numbers.add(num(leaf))
            else:
                self.text.append(str(leaf))
        self.joined = "\n".join(self.text)
        self.joined_iso = "\n".join(_iso(t) for t in self.text)
        for t in self.text:
            found = tokens(t)
            self.numbers.update(found["number"] + found["version"])

    def untraced(self, text: str) -> list[str]:
        """Every identifier, date, hash or number of ``text`` the store does not hold."""
        found = tokens(text)
        bad = [u for u in found["uuid"] + found["hex"] if u not in self.joined]
        bad += [d for d in found["date"] if _iso(d) not in self.joined_iso]
        bad += [v for v in found["version"] if v not in self.numbers]
        return bad + [n for n in found["number"] if n not in self.numbers]


def card_text(page: str, fmt: str) -> str:
    """What a reader sees: images out, and for HTML the tags out and entities decoded."""
    page = IMAGE.sub(" ", page)
    if fmt == "html":
        page = re.sub(r"<style>.*?</style>", " ", page, flags=re.S)
        page = html.unescape(re.sub(r"<[^>]+>", " ", page))
    return page


def stored_evidence(ws: Workspace, model: str, version: int) -> Stored:
    """The store's evidence for one version, read without the card code."""
    info = ws.registry.get(model, version).to_dict()
    extra = info["decision"].get("extra") or {}
    extra.pop("curves", None)  # plot points: drawn, never printed
    lin = info["lineage"]
    profile = ReferenceProfile.from_bytes(ws.artifacts.get(lin["reference_profile_sha256"]))
    prof = [profile.n_rows]
    for p in profile.numeric.values():
        prof += [p.count, p.n_missing, p.mean, p.std, p.sample.values[0], p.sample.values[-1]]
    for c in profile.categorical.values():
        prof += [c.count, c.n_missing, len(c.categories), *c.counts.tolist(), *c.categories]
    approvals = ws.db.transaction(
        lambda s: [
            {col.key: getattr(a, col.key) for col in Approval.__table__.columns}
            for a in s.scalars(select(Approval).where(Approval.version == version))
        ]
    )
    rollouts = ws.db.transaction(
        lambda s: [
            {col.key: getattr(r, col.key) for col in Rollout.__table__.columns}
            for r in s.scalars(select(Rollout))
        ]
    )
    ledger = ws.ledger
    return Stored(
        [
            info,
            [ledger.get_snapshot(lin[f"{k}_snapshot"]).to_dict() for k in ("train", "holdout")],
            prof,
            lin["reference_profile_sha256"],
            approvals,
            rollouts,
            [s.to_dict() for s in ledger.scores(model)],
            [m.to_dict() for m in ws.registry.history(model)],
            ws.spec.model.model_dump(),
            ws.spec.approval.mode,
            spec_hash(ws.spec),
        ]
    )


@pytest.fixture
def three_versions(make_workspace: Callable[..., Path]) -> Path:
    root = make_workspace()
    spec = root / "retrainer.yaml"
    text = spec.read_text().replace(
        "  non_inferiority_margin: 0.02\n", "  non_inferiority_margin: 0.02\n" + GATES
    )
    text = text.replace(
        "  name: toy\n",
        f"  name: toy\n  owner: {OWNER!r}\n"
        "  intended_use: |\n    Rain tomorrow,\n    for planning only.\n",
    )
    spec.write_text(text)
    for i in range(3):
        add_batch(root, f"b{i}", synthetic_batch(i, 800, start_day=i))
        with Workspace.open(root) as ws:
            assert run_cycle(ws, actor="trainer", manual_reason=f"cycle {i}").version == i + 1
    with Workspace.open(root) as ws:
        info = ws.registry.get("toy", 2)
        assert info.decision["champion_version"] == 1 and info.decision["passed"]

        def approve(s: Any) -> None:
            for actor, artifact in (("alice", info.artifact_sha256), ("bob", "ab" * 32)):
                s.add(
                    Approval(
                        model="toy",
                        version=2,
                        actor=actor,
                        role="approver",
                        decision="approve",
                        comment=f"checked by {actor} <b>{{{{ 6*6 }}}}</b>",
                        artifact_sha256=artifact,
                        decision_sha256=decision_sha256(info.decision),
                        override=False,
                        created_at=ws.db.clock(),
                        expires_at=None,
                    )
                )

        ws.db.transaction(approve)
        RolloutStore(ws.db).create(
            "toy",
            candidate=3,
            baseline=2,
            strategy="canary",
            plan={"steps": [10, 50, 100]},
            actor="ops",
            reason="canary of v3 against v2",
        )
    return root


def _card(root: Path, version: int) -> tuple[CardEvidence, dict[str, str], Stored]:
    with Workspace.open(root) as ws:
        evidence = collect_card(ws.db, ws.artifacts, ws.spec, "toy", version)
        stored = stored_evidence(ws, "toy", version)
    return evidence, {f: render_card(evidence, f) for f in ("html", "md")}, stored


def test_every_number_on_the_card_is_stored_evidence_and_changes_with_it(
    three_versions: Path,
) -> None:
    evidence, pages, stored = _card(three_versions, 2)
    stored.joined += "\n" + evidence.digest  # the card names its evidence's own hash
    for fmt, page in pages.items():
        text = card_text(page, fmt)
        assert stored.untraced(text) == [], fmt
        assert len(tokens(text)["number"]) > 150, fmt  # the check saw a full card
        for section in (
            "Intended use and owner",
            "Training data",
            "Drift at training time",
            "Slices",
            "Fairness",
            "Robustness",
            "Decision record",
            "Approvals",
            "Lineage",
            "Evidence",
        ):
            assert section in text, (fmt, section)
        assert NOT_STATED not in text
        assert "From the spec recorded with this version" in text
        assert "Cut from accepted batches 1 to 2." in text
        assert "{{ 7*7 }}" in text and "{{ 6*6 }}" in text  # data, never a template
        assert "49" not in tokens(text)["number"] and "36" not in tokens(text)["number"]
        assert evidence.digest in text
        # metric with its interval vs the champion, slices, fairness, robustness, drift
        vs = next(
            g for g in evidence.data["record"]["decision"]["gates"] if g["name"] == "vs_champion"
        )
        assert f"[{num(vs['ci_low'])}, {num(vs['ci_high'])}]" in text.replace("\\[", "[").replace(
            "\\]", "]"
        )
        assert "color=blue" in text and "selection_rate" in text and "perturbation" in text
        assert "0 of 3 features drifted" in text or "features drifted" in text
        assert "no: the artifact differs" in text  # bob's approval is for another artifact
        assert "canary of v3 against v2" in text and "10% / 50% / 100%" in text
    page = pages["html"]
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>{{" not in page
    assert "\\<script\\>alert(1)\\</script\\>" in pages["md"]
    for fmt in ("html", "md"):  # CI, curves, slices, fairness, drift, metric per batch
        assert pages[fmt].count("data:image/png;base64,") >= 6, fmt
    assert "http://" not in page and "https://" not in page
    assert render_card(evidence, "html") == page  # the same evidence, the same bytes

    typed_in = card_text(page, "html") + " accuracy 0.8123 from 2025-02-03"
    assert stored.untraced(typed_in) == ["2025-02-03", "0.8123"]

    # a metric changed in a copy of the store changes the card, and is not traced to
    # the original evidence
    copy = three_versions.parent / "copy"
    shutil.copytree(three_versions, copy)
    with Workspace.open(copy) as ws:
        metrics = {**ws.registry.get("toy", 2).metrics, "roc_auc": 0.123456}
        ws.db.transaction(
            lambda s: s.execute(
                update(ModelVersion)
                .where(ModelVersion.model == "toy", ModelVersion.version == 2)
                .values(metrics=metrics)
            )
        )
    _, after, _ = _card(copy, 2)
    for fmt in ("html", "md"):
        assert after[fmt] != pages[fmt]
        text = card_text(after[fmt], fmt)
        assert "0.1235" in tokens(text)["number"]
        assert "0.1235" in stored.untraced(text)


def test_a_first_version_without_owner_says_what_is_missing(
    make_workspace: Callable[..., Path], tmp_path: Path
) -> None:
    root = make_workspace()
    add_batch(root, "b0", synthetic_batch(0, 400, start_day=0))
    with Workspace.open(root) as ws:
        assert run_cycle(ws, actor="t", manual_reason="first").promoted
        evidence = collect_card(ws.db, ws.artifacts, ws.spec, "toy", 1)
    md = write_card(evidence, tmp_path / "card.md").read_text()
    assert md.count(NOT_STATED) == 2
    assert "There was no champion when this version was trained" in md
    assert "No slices were configured" in md and "No fairness check was configured" in md
    assert "No approval or rejection is recorded for this version (approval mode auto)" in md
    assert "none to v1" in md  # the alias move that made it champion
    assert md.count("data:image/png;base64,") >= 1  # its ROC and PR curves


def test_a_version_that_was_never_evaluated_still_has_a_card(
    make_workspace: Callable[..., Path],
) -> None:
    with Workspace.open(make_workspace()) as ws:
        number = ws.registry.create_version("toy", run_id=None, actor="t", params={}, lineage={})
        ws.registry.set_status("toy", number, "FAILED", actor="t", reason="the fit raised")
        evidence = collect_card(ws.db, ws.artifacts, ws.spec, "toy", number)
    text = card_text(render_card(evidence, "html"), "html")
    assert "Not evaluated: no decision record (it is FAILED)" in text
    assert "snapshot not found" in text and "this version stored no reference profile" in text
    assert "No alias ever pointed at this version" in text
    assert "Slices" not in text and "Decision record" not in text


def test_card_paths_are_checked_and_named(tmp_path: Path) -> None:
    assert card_format(Path("a/card.HTML")) == "html" and card_format(Path("c.md")) == "md"
    with pytest.raises(DataSourceError, match=r"card\.pdf: expected a \.html or \.md file"):
        card_format(tmp_path / "card.pdf")
    evidence = CardEvidence({"model": "m", "version": 1})
    with pytest.raises(DataSourceError, match=rf"cannot write {re.escape(str(tmp_path))}/no/c\.md"):
        write_card(evidence, tmp_path / "no" / "c.md")
