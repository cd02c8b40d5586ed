"""When a candidate needs a person: the approval mode, the ``auto_if`` change envelope,
and data flagged as anomalous."""

from __future__ import annotations

from retrainer.data.contract import AUTO_PROMOTION_BLOCKERS
from retrainer.evaluate.metrics import METRICS
from retrainer.registry.registry import VersionInfo
from retrainer.spec import PipelineSpec

__all__ = ["envelope_violations", "held_by_flags", "needs_person"]


def envelope_violations(
    spec: PipelineSpec, candidate: VersionInfo, champion: VersionInfo | None
) -> list[str]:
    """Why ``candidate`` lies outside ``approval.auto_if`` (empty: inside)."""
    env = spec.approval.auto_if
    if env is None:
        return ["approval.mode is not auto_if"]
    if champion is None:
        return ["there is no champion to compare the change against"]
    out: list[str] = []
    if env.same_estimator:
        mine, theirs = _family(candidate), _family(champion)
        if mine != theirs:
            out.append(f"estimator changed from {theirs} to {mine}")
    if env.same_features:
        mine_f, theirs_f = candidate.lineage.get("features"), champion.lineage.get("features")
        if mine_f != theirs_f:
            out.append("features differ from the champion's")
    d = candidate.decision
    cand, champ = d.get("candidate_metric"), d.get("champion_metric")
    if cand is None or champ is None:
        out.append("the decision record has no champion metric to compare with")
    else:
        info = METRICS.get(str(d.get("metric")))
        sign = 1.0 if info is None or info.higher_is_better else -1.0
        change = sign * (float(cand) - float(champ))
        low, high = env.metric_change
        if not low <= change <= high:
            out.append(
                f"{d.get('metric')} change {change:+.4f} is outside the band "
                f"[{low:+.4f}, {high:+.4f}]"
            )
    return out


def held_by_flags(flags: dict[str, list[str]]) -> str:
    """Which flagged batches hold back automatic promotion, in words ('' when none)."""
    held = {
        batch: sorted(set(codes) & AUTO_PROMOTION_BLOCKERS)
        for batch, codes in sorted(flags.items(), key=lambda kv: int(kv[0]))
    }
    return ", ".join(f"batch {b} flagged {' and '.join(c)}" for b, c in held.items() if c)


def _family(info: VersionInfo) -> str:
    return str(info.params.get("estimator") or info.params.get("entrypoint") or "unknown")


def needs_person(
    spec: PipelineSpec,
    candidate: VersionInfo,
    champion: VersionInfo | None,
    held_by_flags: str = "",
) -> list[str]:
    """Why ``candidate`` must wait for a person (empty: it may be promoted by itself)."""
    mode = spec.approval.mode
    out: list[str] = []
    if mode == "manual":
        out.append("approval.mode is manual")
    elif mode == "auto_if":
        out += [
            f"outside the auto_if envelope: {v}"
            for v in envelope_violations(spec, candidate, champion)
        ]
    if held_by_flags:
        out.append(f"trained on {held_by_flags}")
    return out
