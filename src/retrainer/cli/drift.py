"""``retrainer drift``: compare two data files, feature by feature (no workspace needed)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from retrainer.cli.common import JsonOpt, console, guard
from retrainer.cli.render import print_json, table

if TYPE_CHECKING:  # the statistics stack (scipy, matplotlib) loads only when run
    from retrainer.monitor.drift.files import FileComparison
    from retrainer.monitor.drift.report import FeatureDrift

__all__ = ["drift_cmd"]


class _Correction(StrEnum):
    bh = "bh"
    bonferroni = "bonferroni"
    none = "none"


class _NumericEffect(StrEnum):
    psi = "psi"
    ks = "ks"
    js = "js"
    wasserstein = "wasserstein"


class _NumericTest(StrEnum):
    ks_t = "ks+t"
    ks = "ks"
    t = "t"


class _CategoricalEffect(StrEnum):
    cramers_v = "cramers_v"
    psi = "psi"
    js = "js"


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if value >= 1e-4 or value == 0 else f"{value:.2e}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _row(f: FeatureDrift) -> tuple[Any, ...]:
    effect = f"{f.effect_name}={_num(f.effect)}" if f.effect is not None else "-"
    return (
        f.feature,
        f.test,
        _num(f.statistic),
        _p(f.p_value_corrected),
        effect,
        f.status,
    )


def drift_cmd(
    reference: Annotated[
        Path,
        typer.Argument(
            help="Reference data: a Parquet (.parquet) or CSV (.csv) file.", show_default=False
        ),
    ],
    current: Annotated[
        Path, typer.Argument(help="Data to check against it (Parquet or CSV).", show_default=False)
    ],
    as_json: JsonOpt = False,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="Also write a self-contained HTML report (table and plots) to this file.",
            show_default=False,
        ),
    ] = None,
    alpha: Annotated[
        float, typer.Option(help="Significance level, after correction across features.")
    ] = 0.01,
    min_effect: Annotated[
        float | None,
        typer.Option(
            "--min-effect",
            help="Effect size that counts as drift, for every feature "
            "(default: 0.2 for numeric PSI, 0.1 for categorical Cramér's V).",
            show_default=False,
        ),
    ] = None,
    categorical: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated columns to treat as categorical (others by their dtype).",
            show_default=False,
        ),
    ] = None,
    columns: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated columns to check (default: all of the reference's).",
            show_default=False,
        ),
    ] = None,
    correction: Annotated[
        _Correction, typer.Option(help="Multiple-testing correction across features.")
    ] = _Correction.bh,
    min_samples: Annotated[
        int, typer.Option(help="Usable values needed on each side to judge a feature.")
    ] = 200,
    numeric_test: Annotated[
        _NumericTest,
        typer.Option(
            help="Test for numeric features: ks+t (Kolmogorov-Smirnov and Welch's t, "
            "Bonferroni-combined), ks, or t."
        ),
    ] = _NumericTest.ks_t,
    numeric_effect: Annotated[
        _NumericEffect, typer.Option(help="Effect size for numeric features.")
    ] = _NumericEffect.psi,
    categorical_effect: Annotated[
        _CategoricalEffect, typer.Option(help="Effect size for categorical features.")
    ] = _CategoricalEffect.cramers_v,
    domain_classifier: Annotated[
        bool,
        typer.Option(
            "--domain-classifier",
            help="Also report the ROC AUC of a classifier telling the files' rows apart.",
        ),
    ] = False,
) -> None:
    """Compare two data files feature by feature: which features drifted, and how much.

    Numeric features: Kolmogorov-Smirnov and Welch's t tests, PSI, Jensen-Shannon and
    Wasserstein distances; categorical ones: chi-square test, Cramér's V, PSI, unseen categories.
    A feature drifts when its effect size reaches --min-effect and its corrected
    p-value is below --alpha. Exits 0 whether or not anything drifted.

    Example: [bold]retrainer drift train.parquet new_batch.csv --html drift.html[/bold]
    """
    from retrainer.monitor.drift.files import compare_files
    from retrainer.monitor.drift.html import write_html
    from retrainer.monitor.drift.report import DriftConfig

    try:
        config = DriftConfig(
            alpha=alpha,
            correction=correction.value,
            min_samples=min_samples,
            numeric_test=numeric_test.value,
            numeric_effect=numeric_effect.value,
            categorical_effect=categorical_effect.value,
            domain_classifier=domain_classifier,
            numeric_min_effect=0.2 if min_effect is None else min_effect,
            categorical_min_effect=0.1 if min_effect is None else min_effect,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc).removeprefix("DriftConfig: ")) from None

    def body() -> tuple[FileComparison, Path | None]:
        result = compare_files(
            reference,
            current,
            config,
            columns=_names(columns),
            categorical=_names(categorical) or (),
        )
        written = None
        if html is not None:
            written = write_html(
                result.report,
                result.profile,
                result.current,
                html,
                title=f"Drift report: {current.name} against {reference.name}",
                reference_name=str(reference),
                current_name=str(current),
                skipped=result.skipped,
            )
        return result, written

    result, written = guard(body)
    report = result.report
    c = console()
    if as_json:
        print_json(
            c,
            {
                "reference": str(reference),
                "current": str(current),
                **report.to_dict(),
                "skipped_columns": result.skipped,
                "html": None if written is None else str(written),
            },
        )
        return
    c.print(
        table(
            f"Drift of {current} against {reference}",
            ["feature", "test", "statistic", f"p ({report.config.correction})", "effect", "status"],
            [_row(f) for f in report.features],
            numeric=["statistic", f"p ({report.config.correction})"],
            no_wrap=["test", "statistic", "effect", "status"],
        )
    )
    for f in report.features:
        why = [f.reason] if f.status != "no_drift" else []
        for line in [*why, *([f.note] if f.note else [])]:
            c.print(f"  {f.feature}: {line}", soft_wrap=True)
    c.print(report.summary())
    if report.domain is not None:
        c.print(
            f"domain classifier ROC AUC {report.domain.auc:.3f} ± {report.domain.auc_std:.3f} "
            "(0.5: the files' rows are indistinguishable)"
        )
    elif report.domain_note:
        c.print(f"domain classifier: {report.domain_note}")
    if result.skipped:
        c.print(
            f"not checked (neither numeric nor categorical): {', '.join(result.skipped)}",
            soft_wrap=True,
        )
    if written is not None:
        c.print(f"HTML report: {written}", soft_wrap=True)  # a path to copy, unbroken
