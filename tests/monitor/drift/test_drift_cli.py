"""``retrainer drift`` on real Parquet and CSV files: table, JSON, HTML, errors."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from retrainer.cli.app import app

SCRIPT = "<script>alert(1)</script>"


def files(tmp_path: Path) -> tuple[Path, Path]:
    """reference.parquet and current.csv: 'age' shifts, 'region' gains an unseen
    category, 'income' and the '[red]id[/red]' column stay, 'when' is a date."""
    rng = np.random.default_rng(0)
    n = 1500
    ref = pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "income": rng.lognormal(10, 1, n),
            "region": rng.choice(["north", "south", "[bold]east[/bold]", "a$x^{$b"], n),
            "[red]id[/red]": rng.integers(0, 5, n),
            "when": pd.date_range("2024-01-01", periods=n, freq="h"),
        }
    )
    cur = ref.copy()
    cur["age"] = rng.normal(48, 10, n)
    cur["income"] = rng.lognormal(10, 1, n)
    cur["region"] = rng.choice(["north", "south", SCRIPT], n)
    ref_path, cur_path = tmp_path / "reference.parquet", tmp_path / "current.csv"
    ref.to_parquet(ref_path)
    cur.to_csv(cur_path, index=False)
    return ref_path, cur_path


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, ["drift", *map(str, args)])


def flat(text: str) -> str:
    return " ".join(text.split())


def test_table_and_summary(tmp_path: Path) -> None:
    ref, cur = files(tmp_path)
    result = invoke(ref, cur)
    assert result.exit_code == 0, result.output
    out = result.stdout
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert re.search(r"ks\+t .* psi=\S+ +drift$", rows["age"].rstrip())
    assert re.search(r"chi2 .* cramers_v=\S+ +drift$", rows["region"].rstrip())
    assert rows["income"].rstrip().endswith("no_drift")
    assert "[red]id[/red]" in out  # user text is never parsed as markup
    assert "2 of 4 features drifted (50%)" in flat(out)
    assert "not checked (neither numeric nor categorical): when" in flat(out)
    assert "region: 3" in out and "categories the reference never saw" in flat(out)


def test_json(tmp_path: Path) -> None:
    ref, cur = files(tmp_path)
    result = invoke(ref, cur, "--json", "--columns", "age,income,region", "--alpha", "0.05")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["drifted"] == ["age", "region"]
    assert data["share_drifted"] == pytest.approx(2 / 3)
    assert data["reference"] == str(ref) and data["current"] == str(cur)
    assert data["config"]["alpha"] == 0.05
    age = next(f for f in data["features"] if f["feature"] == "age")
    assert age["status"] == "drift" and age["test"] == "ks+t" and age["effect_name"] == "psi"
    assert age["p_value_corrected"] < 0.05 and age["metrics"]["wasserstein"] > 0


def test_no_drift_also_exits_zero_and_options_apply(tmp_path: Path) -> None:
    ref, _ = files(tmp_path)
    result = invoke(
        ref,
        ref,
        "--json",
        "--categorical",
        "[red]id[/red]",
        "--min-effect",
        "0.05",
        "--correction",
        "bonferroni",
        "--numeric-effect",
        "ks",
        "--numeric-test",
        "ks",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["drifted"] == []
    assert data["config"]["numeric_test"] == "ks"
    assert {f["test"] for f in data["features"] if f["kind"] == "numeric"} == {"ks"}
    ident = next(f for f in data["features"] if f["feature"] == "[red]id[/red]")
    assert ident["kind"] == "categorical" and ident["min_effect"] == 0.05
    assert data["config"]["correction"] == "bonferroni"
    assert data["config"]["numeric_effect"] == "ks"


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_html_report_is_self_contained(tmp_path: Path) -> None:
    ref, cur = files(tmp_path)
    out = tmp_path / "drift.html"
    result = invoke(ref, cur, "--html", out)
    assert result.exit_code == 0, result.output
    assert f"HTML report: {out}" in flat(result.stdout)
    html = out.read_text("utf-8")
    assert html.startswith("<!doctype html>") and html.rstrip().endswith("</html>")
    assert html.count('<img src="data:image/png;base64,') == 4
    parser = _Tags()
    parser.feed(html)
    images = [attrs["src"] or "" for tag, attrs in parser.tags if tag == "img"]
    assert len(images) == 4  # one plot per checked feature
    for src in images:
        png = base64.b64decode(src.removeprefix("data:image/png;base64,"), validate=True)
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert not [t for t, _ in parser.tags if t in ("script", "link", "iframe")]
    assert not re.search(r"(src|href)=\"(https?:)?//", html)  # nothing from the network
    assert SCRIPT not in html  # escaped, never run
    assert "2 of 4 features drifted (50%)" in html


def test_html_with_json_reports_the_path(tmp_path: Path) -> None:
    ref, cur = files(tmp_path)
    out = tmp_path / "r.html"
    result = invoke(ref, cur, "--json", "--html", out)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["html"] == str(out) and out.exists()


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    ref, cur = files(tmp_path)
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"this is not parquet")
    result = invoke(garbage, cur)
    assert result.exit_code == 2
    assert "cannot read" in result.stderr and str(garbage) in flat(result.stderr)
    assert "DATA_SOURCE" in result.stderr

    empty = tmp_path / "empty.csv"
    empty.write_text("")
    result = invoke(ref, empty)
    assert result.exit_code == 2 and str(empty) in flat(result.stderr)

    missing = tmp_path / "nope.csv"
    result = invoke(ref, missing)
    assert result.exit_code == 2 and f"{missing}: no such file" in flat(result.stderr)

    sheet = tmp_path / "data.xlsx"
    sheet.write_bytes(b"PK")
    result = invoke(sheet, cur)
    assert result.exit_code == 2
    assert "expected a Parquet (.parquet, .pq) or CSV" in flat(result.stderr)

    result = invoke(ref, cur, "--columns", "age,nope")
    assert result.exit_code == 2
    assert f"{ref} has no column 'nope'" in flat(result.stderr)

    result = invoke(ref, cur, "--html", tmp_path / "no" / "such" / "dir.html")
    assert result.exit_code == 2 and "cannot write" in result.stderr


def test_header_only_batch_is_insufficient_not_an_error(tmp_path: Path) -> None:
    ref, _ = files(tmp_path)
    header = tmp_path / "header.csv"
    header.write_text("age,income,region,[red]id[/red],when\n")
    result = invoke(ref, header, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {f["status"] for f in data["features"]} == {"insufficient_data"}
    assert data["drifted"] == []


@pytest.mark.parametrize("alpha", ["0", "1", "-0.5"])
def test_out_of_range_alpha_is_a_usage_error(tmp_path: Path, alpha: str) -> None:
    ref, cur = files(tmp_path)
    result = invoke(ref, cur, "--alpha", alpha)
    assert result.exit_code == 2
    assert "alpha in (0, 1)" in flat(result.output)
