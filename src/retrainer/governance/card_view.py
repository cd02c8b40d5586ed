"""What a model card says, section by section, built from the evidence dict alone.

:func:`card_sections` turns :attr:`CardEvidence.data` into sections of blocks
(:mod:`.card_blocks`) that the HTML and Markdown templates both render, so the two
formats always say the same. This module has the sections on what the version is and was
made from (summary, intended use, training data, drift at training time, lineage, the
evidence appendix); :mod:`.card_outcome` those on how it was judged and what became of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from retrainer.governance import card_outcome as outcome
from retrainer.governance.card_blocks import (
    DRIFT_PLOT,
    NOT_STATED,
    Block,
    kv,
    num,
    para,
    plot,
    score_table,
    short,
    table,
    when,
)

__all__ = ["card_sections"]

Section = dict[str, Any]


def _head(e: Mapping[str, Any]) -> list[Block]:
    r, d = e["record"], e["record"].get("decision") or {}
    verdict = (
        _not_evaluated(e)
        if not d
        else ("PASSED: " if d.get("passed") else "BLOCKED: ")
        + str(d.get("summary", "")).removeprefix("passed: ").removeprefix("failed: ")
    )
    return [
        para(verdict),
        kv(
            [
                ("status", r["status"]),
                ("aliases", ", ".join(r.get("aliases") or []) or "none"),
                ("trained", f"{when(r['created_at'])} by {r['created_by']} (run {r['run_id']})"),
                ("artifact sha256", r.get("artifact_sha256") or "-"),
            ]
        ),
    ]


def _not_evaluated(e: Mapping[str, Any]) -> str:
    r = e["record"]
    why = (r.get("lineage") or {}).get("failure") or f"it is {r['status']}"
    return f"Not evaluated: no decision record ({why})."


def _use(e: Mapping[str, Any]) -> list[Block]:
    sp, lin = e["spec"], e["record"].get("lineage") or {}
    feats = lin.get("features") or {}
    if sp["source"] == "recorded":
        where = f"From the spec recorded with this version (sha256 {short(sp['sha256'])})."
    elif sp.get("same_as_training"):
        where = "From the workspace's spec, which is the spec this version was trained with."
    else:
        where = (
            "From the workspace's spec, as this version stored no spec of its own. The spec "
            f"now hashes to {short(sp['sha256'])}, not to the {short(lin.get('spec_sha256'))} "
            "recorded at training: the file or retrainer's defaults changed since."
        )
    return [
        kv(
            [
                ("owner", sp.get("owner") or NOT_STATED),
                ("intended use", sp.get("intended_use") or NOT_STATED),
                ("task", f"{lin.get('task') or '-'} of {lin.get('target') or '-'}"),
                ("numeric features", ", ".join(feats.get("numeric") or []) or "none"),
                ("categorical features", ", ".join(feats.get("categorical") or []) or "none"),
                ("approval mode", sp.get("approval_mode") or "-"),
            ]
        ),
        para(where, muted=True),
    ]


def _data(e: Mapping[str, Any]) -> list[Block]:
    lin = e["record"].get("lineage") or {}
    rows = []
    for kind in ("train", "holdout"):
        s = e["snapshots"].get(kind)
        if s is None:
            rows.append([kind, "-", "snapshot not found", "-", "-"])
        else:
            span = f"{when(s['time_min'])} to {when(s['time_max'])}"
            rows.append([kind, s["row_count"], span, s["source_uri"], short(s["content_hash"])])
    out = [table(["set", "rows", "time range", "source", "content sha256"], rows)]
    if lin.get("batch_ids"):
        out.append(para(f"Cut from accepted batches {_runs(lin['batch_ids'])}."))
    flags = lin.get("data_flags") or {}
    out.append(para("Data flags: " + (", ".join(map(str, flags)) if flags else "none") + "."))
    leak = lin.get("leakage") or {}
    if leak.get("features"):
        out.append(
            table(
                ["feature", "measure", "value", "how"],
                [
                    [f["feature"], f["measure"], f["value"], f.get("how", "")]
                    for f in leak["features"]
                ],
                title="Leakage checks: each feature alone against the target",
            )
        )
        out.append(
            para(
                "Training rows equal to holdout rows dropped: "
                f"{num(leak.get('holdout_rows_dropped'))}; suspects: "
                f"{', '.join(map(str, leak.get('suspects') or [])) or 'none'}."
            )
        )
    prof = e["training_profile"]
    if "missing" in prof:
        out.append(para(f"No per-feature summary: {prof['missing']}.", muted=True))
        return out
    if prof["numeric"]:
        out.append(
            table(
                ["feature", "values", "missing", "mean", "std", "min", "max"],
                [
                    [
                        f["feature"],
                        f["count"],
                        f["missing"],
                        f["mean"],
                        f["std"],
                        f["min"],
                        f["max"],
                    ]
                    for f in prof["numeric"]
                ],
                title=f"Numeric features of the {num(prof['rows'])} training rows",
            )
        )
    if prof["categorical"]:
        out.append(
            table(
                ["feature", "values", "missing", "categories", "most frequent"],
                [
                    [
                        f["feature"],
                        f["count"],
                        f["missing"],
                        f["categories"],
                        ", ".join(f"{k} ({num(n)})" for k, n in f["top"]),
                    ]
                    for f in prof["categorical"]
                ],
                title="Categorical features",
            )
        )
    out.append(para(f"From the reference profile sha256 {short(prof['sha256'])}.", muted=True))
    return out


def _drift(e: Mapping[str, Any]) -> list[Block]:
    lin, d = e["record"].get("lineage") or {}, e["record"].get("decision") or {}
    m, metric = e["monitoring"], str(d.get("metric", ""))
    trig = lin.get("trigger") or {}
    out = [para(f"Why it was trained ({trig.get('kind', '-')}): {trig.get('reason', '-')}.")]
    if not d:
        out.append(para("No decision record names the champion it was judged against."))
        return out
    if m["champion_at_training"] is None:
        out.append(
            para(
                "There was no champion when this version was trained, so no drift "
                "was measured against one."
            )
        )
        return out
    if not m["before"]:
        out.append(
            para(
                f"Champion v{m['champion_at_training']} was scored on no batch up to "
                "this version's training data."
            )
        )
        return out
    s = m["before"][0]
    drift = s.get("drift") or {}
    out.append(
        para(
            f"Newest batch before training: batch {s['batch_id']}, scored for champion "
            f"v{s['version']}: {drift.get('summary', 'no drift report')}"
            + (
                f"; domain classifier AUC {num(drift['domain_auc'])}"
                if drift.get("domain_auc")
                else ""
            )
            + "."
        )
    )
    feats = drift.get("features") or []
    if feats:
        out.append(
            table(
                [
                    "feature",
                    "kind",
                    "status",
                    "test",
                    "p (corrected)",
                    "effect",
                    "min effect",
                    "why",
                ],
                [
                    [
                        f["feature"],
                        f["kind"],
                        f["status"],
                        f.get("test", ""),
                        f.get("p_value_corrected"),
                        f"{f.get('effect_name', '')} {num(f.get('effect'))}",
                        f.get("min_effect"),
                        f.get("reason", ""),
                    ]
                    for f in feats
                ],
            )
        )
        out.append(plot(DRIFT_PLOT))
    out.append(score_table(m["before"], metric, "Batches scored before training (newest first)"))
    return out


def _runs(ids: Sequence[int]) -> str:
    """Batch ids as runs: ``1 to 9, 11 to 46`` (each end a stored id)."""
    runs: list[list[int]] = []
    for i in sorted(ids):
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]} to {r[-1]}" for r in runs)


def _commit(code: Mapping[str, Any], env: Mapping[str, Any]) -> str:
    if code.get("repository") is False:
        return "none: the workspace is not in a git repository"
    return str(code.get("commit") or env.get("code_commit") or "not recorded")


def _estimator(spec: Any, fitted: Any) -> str:
    """The spec's estimator, and the fitted object's class when that differs (a pipeline
    around it)."""
    if spec and fitted and fitted != spec:
        return f"{spec} (fitted as {fitted})"
    return str(spec or fitted or "-")


def _lineage(e: Mapping[str, Any]) -> list[Block]:
    r, lin = e["record"], e["record"].get("lineage") or {}
    env, code = lin.get("environment") or {}, lin.get("code") or {}
    params = r.get("params") or {}
    snaps = e["snapshots"]
    rows: list[tuple[str, Any]] = [
        ("model artifact sha256", r.get("artifact_sha256") or "-"),
        ("train rows sha256", lin.get("train_sha256") or "-"),
        ("train snapshot artifact", (snaps.get("train") or {}).get("artifact_sha256") or "-"),
        ("holdout rows sha256", lin.get("holdout_sha256") or "-"),
        ("holdout snapshot artifact", (snaps.get("holdout") or {}).get("artifact_sha256") or "-"),
        ("reference profile sha256", lin.get("reference_profile_sha256") or "-"),
        ("CBPE calibration sha256", lin.get("cbpe_sha256") or "-"),
        ("spec sha256", lin.get("spec_sha256") or "-"),
        ("spec document sha256", lin.get("spec_artifact_sha256") or "-"),
        ("environment lock sha256", env.get("env_lock_sha256") or "-"),
        ("code commit", _commit(code, env)),
        ("estimator", _estimator(params.get("estimator"), lin.get("estimator_class"))),
        (
            "parameters",
            ", ".join(f"{k}={v}" for k, v in (params.get("params") or {}).items()) or "defaults",
        ),
        ("seed", lin.get("seed")),
        ("python", env.get("python") or "-"),
        ("platform", env.get("platform") or "-"),
        ("packages", ", ".join(f"{k} {v}" for k, v in (env.get("packages") or {}).items()) or "-"),
    ]
    if code.get("dirty") is not None:
        rows.insert(11, ("code had uncommitted changes", bool(code["dirty"])))
    return [kv(rows)]


def _appendix(digest: str, model: str, version: int) -> list[Block]:
    rows = [
        (
            "intended use and owner",
            "the spec document recorded with the version, else the "
            "workspace's retrainer.yaml (model.owner, model.intended_use)",
        ),
        ("status, metrics, decision record, lineage", f"model_versions row {model}:{version}"),
        (
            "training data",
            "snapshots rows (train_snapshot, holdout_snapshot) and the reference profile artifact",
        ),
        ("drift and monitoring", "batch_scores rows of the champion of the day and of the version"),
        ("approvals", "approvals rows of the version"),
        ("deployment", "alias_history and rollouts rows"),
    ]
    return [
        kv(rows),
        para(
            f"Every number on this card is one of these stored values, rounded for display. "
            f"'retrainer card {model} {version} --json' prints the evidence; the sha256 of its "
            f"canonical JSON (sorted keys, no spaces) is {digest}.",
            muted=True,
        ),
    ]


def card_sections(
    e: Mapping[str, Any], digest: str, decision_plot_keys: Sequence[str]
) -> list[Section]:
    """The card's sections, in order, each ``{"id", "title", "blocks"}``.

    ``digest`` is :attr:`CardEvidence.digest`; ``decision_plot_keys`` the titles of the
    decision record's plots (``evaluate.explain_html.decision_plots``): the slices and
    fairness ones go to their sections, the others under evaluation.
    """
    d = e["record"].get("decision") or {}
    keys = list(decision_plot_keys)
    sections = [
        ("summary", "Summary", _head(e)),
        ("use", "Intended use and owner", _use(e)),
        ("data", "Training data", _data(e)),
        ("drift", "Drift at training time", _drift(e)),
        (
            "evaluation",
            "Evaluation",
            outcome.evaluation(e, [k for k in keys if k not in outcome.OWN_PLOTS])
            if d
            else [para(_not_evaluated(e))],
        ),
        *(
            [
                ("slices", "Slices", outcome.slices(d, keys)),
                ("fairness", "Fairness", outcome.fairness(d, keys)),
                ("robustness", "Robustness", outcome.robustness(d)),
                ("decision", "Decision record", outcome.decision(d)),
            ]
            if d
            else []
        ),
        ("approvals", "Approvals", outcome.approvals(e)),
        ("deployment", "Deployment and monitoring", outcome.deployment(e)),
        ("lineage", "Lineage", _lineage(e)),
        ("evidence", "Evidence", _appendix(digest, e["model"], int(e["version"]))),
    ]
    return [{"id": i, "title": t, "blocks": b} for i, t, b in sections]
