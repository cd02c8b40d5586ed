"""``retrainer.yaml``: the templates parse; every malformed spec fails with a message that
names the file, the key path, the line, what was expected and what was given (BI-09);
YAML is read safely and never rendered (SEC-11); ``spec_hash`` and ``parse_duration``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from retrainer.errors import RetrainerError, SpecError
from retrainer.quickstart.templates import GENERIC_SPEC, RAINFALL_SPEC
from retrainer.spec import PipelineSpec, load_spec, parse_duration, parse_spec, spec_hash

SOURCE = "configs/retrainer.yaml"

BASE = """\
model:
  name: toy
  task: classification
  target: y
  features:
    numeric: [x1, x2]
    categorical: [color]
data:
  source: data/batches
  time_column: ts
  window: {rows: 2000}
  holdout: {fraction: 0.25, by: time}
contract:
  min_rows: 50
triggers:
  - performance: {below: 0.7, min_rows: 50}
  - data_volume: {rows: 600}
  - manual: {}
train:
  estimator: sklearn.linear_model.LogisticRegression
  params: {max_iter: 200}
  seed: 3
evaluate:
  metric: roc_auc
  non_inferiority_margin: 0.02
  bootstrap_resamples: 200
approval:
  mode: auto
"""


def edit(old: str, new: str, text: str = BASE) -> str:
    """``text`` with the one occurrence of ``old`` replaced (fails loudly if absent)."""
    assert text.count(old) == 1, f"{old!r} must occur exactly once"
    return text.replace(old, new)


def line_of(text: str, needle: str) -> int:
    """1-based number of the first line of ``text`` containing ``needle``."""
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in the text")


def spec_error(text: str) -> str:
    """The message of the SpecError that parsing ``text`` raises."""
    with pytest.raises(SpecError) as info:
        parse_spec(text, source=SOURCE)
    message = str(info.value)
    assert message.startswith(f"{SOURCE}:"), message
    return message


# -- what parses -----------------------------------------------------------------------


def test_base_spec_parses_with_defaults() -> None:
    spec = parse_spec(BASE, source=SOURCE)
    assert spec.model.name == "toy"
    assert spec.model.features.all == ["x1", "x2", "color"]
    assert [t.kind for t in spec.triggers] == ["performance", "data_volume", "manual"]
    assert spec.contract.extra_columns == "allow"
    assert spec.evaluate.mode == "non_inferiority"
    assert spec.evaluate.margin == 0.02
    assert spec.store == "sqlite:///.retrainer/retrainer.db"
    assert spec.required_columns == ["x1", "x2", "color", "y", "ts"]


def test_rainfall_template_parses() -> None:
    spec = parse_spec(RAINFALL_SPEC, source="rainfall")
    assert spec.model.name == "rain"
    assert spec.model.task == "classification"
    assert spec.model.target == "rain"
    assert "temperature" in spec.model.features.numeric
    assert spec.data.time_column == "date"
    assert spec.data.window.last == timedelta(days=1095)
    assert spec.evaluate.metric == "roc_auc"
    assert spec.train.estimator == "sklearn.ensemble.HistGradientBoostingClassifier"
    assert {t.kind for t in spec.triggers} == {"performance", "drift", "data_volume", "manual"}


def test_generic_template_parses() -> None:
    spec = parse_spec(GENERIC_SPEC, source="generic")
    assert spec.model.name == "my-model"
    assert spec.model.features.all == ["x1", "x2"]
    assert spec.data.window.last == timedelta(days=365)
    assert spec.approval.mode == "auto"


def test_load_spec_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "retrainer.yaml"
    path.write_text(BASE, encoding="utf-8")
    assert load_spec(path) == parse_spec(BASE)


# -- malformed specs: key path, line, expected vs given ----------------------------------

# (id, spec text, fragments the message must contain, text on the line it must name or None)
CASES = [
    (
        "unknown-top-level-key",
        BASE + "modle: {}\n",
        ["modle", "unknown key", "did you mean 'model'", "expected one of: model, data"],
        "modle:",
    ),
    (
        "unknown-nested-key",
        edit("  metric: roc_auc\n", "  metirc: roc_auc\n"),
        ["evaluate.metirc", "unknown key", "did you mean 'metric'", "non_inferiority_margin"],
        "metirc:",
    ),
    (
        "unknown-key-in-flow-mapping",
        edit("holdout: {fraction: 0.25, by: time}", "holdout: {fractoin: 0.25, by: time}"),
        ["data.holdout.fractoin", "did you mean 'fraction'"],
        "fractoin",
    ),
    (
        "wrong-type",
        edit("min_rows: 50\n", "min_rows: lots\n"),
        ["contract.min_rows", "valid integer", "given: 'lots'"],
        "min_rows: lots",
    ),
    (
        "holdout-fraction-out-of-range",
        edit("fraction: 0.25", "fraction: 1.5"),
        ["data.holdout.fraction", "less than or equal to 0.5", "given: 1.5"],
        "fraction: 1.5",
    ),
    (
        "confidence-out-of-range",
        edit("  bootstrap_resamples: 200\n", "  bootstrap_resamples: 200\n  confidence: 2\n"),
        ["evaluate.confidence", "less than 1", "given: 2"],
        "confidence: 2",
    ),
    (
        "missing-required-target",
        edit("  target: y\n", ""),
        ["model.target", "required key is missing"],
        None,
    ),
    (
        "invalid-enum",
        edit("task: classification", "task: clustering"),
        ["model.task", "'classification' or 'regression'", "given: 'clustering'"],
        "task: clustering",
    ),
    (
        "metric-wrong-for-task",
        edit("metric: roc_auc", "metric: rmse"),
        ["evaluate.metric", "classification", "'rmse'", "roc_auc", "accuracy", "log_loss"],
        None,  # the line is checked in test_cross_field_errors_name_the_line_of_the_key
    ),
    (
        "estimator-and-entrypoint",
        edit("  seed: 3\n", "  seed: 3\n  entrypoint: mypkg.train:fit\n"),
        ["train", "exactly one of 'estimator'", "'entrypoint'"],
        "train:",
    ),
    (
        "duplicate-feature",
        edit("numeric: [x1, x2]", "numeric: [x1, x2, x1]"),
        ["model.features", "each feature once", "duplicates: x1"],
        "features:",
    ),
    (
        "target-is-a-feature",
        edit("numeric: [x1, x2]", "numeric: [x1, x2, y]"),
        ["model", "target 'y' must not also be a feature"],
        "model:",
    ),
    (
        "holdout-by-time-without-time-column",
        edit("  time_column: ts\n", ""),
        ["data.holdout.by", "'time'", "data.time_column"],
        None,  # the line is checked in test_cross_field_errors_name_the_line_of_the_key
    ),
    (
        "trigger-with-two-kinds",
        edit("  - manual: {}\n", "  - manual: {}\n    data_volume: {rows: 5}\n"),
        [
            "triggers.2",
            "exactly one of data_volume, performance, drift, schedule, manual",
            "got data_volume, manual",
        ],
        None,  # the line is checked in test_sequence_item_errors_name_the_line_of_the_item
    ),
    (
        "performance-trigger-without-bounds",
        edit("performance: {below: 0.7, min_rows: 50}", "performance: {min_rows: 50}"),
        ["triggers.0.performance", "'below'", "'above'"],
        "- performance:",
    ),
    (
        "bad-duration",
        edit("window: {rows: 2000}", "window: {last: 90 days}"),
        ["data.window.last", "a duration such as '90d'", "'90 days'"],
        "window:",
    ),
    (
        "bad-model-name",
        edit("name: toy", "name: My Model"),
        ["model.name", "given: 'My Model'"],
        "name: My Model",
    ),
    (
        "missing-section",
        edit("train:\n  estimator: sklearn.linear_model.LogisticRegression\n", "").replace(
            "  params: {max_iter: 200}\n  seed: 3\n", ""
        ),
        ["train", "required key is missing"],
        None,
    ),
]


@pytest.mark.parametrize(
    ("text", "fragments", "line_text"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_malformed_spec_names_key_line_expected_and_given(
    text: str, fragments: list[str], line_text: str | None
) -> None:
    message = spec_error(text)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    if line_text is not None:
        assert f"(line {line_of(text, line_text)})" in message, message


def test_all_problems_are_reported_at_once() -> None:
    text = edit(
        "  metric: roc_auc\n", "  metirc: roc_auc\n", edit("  min_rows: 50\n", "  min_rows: x\n")
    )
    message = spec_error(text)
    assert re.search(r"\b2 problems? in the spec", message), message
    assert "evaluate.metirc" in message
    assert "contract.min_rows" in message


def test_spec_error_is_bad_input() -> None:
    err = SpecError("x")
    assert isinstance(err, RetrainerError)
    assert (err.code, err.exit_code) == ("SPEC_INVALID", 2)


@pytest.mark.parametrize(
    ("text", "key", "line_text"),
    [
        (edit("metric: roc_auc", "metric: rmse"), "evaluate.metric", "metric: rmse"),
        (edit("  time_column: ts\n", ""), "data.holdout.by", "holdout:"),
    ],
    ids=["metric-wrong-for-task", "holdout-by-time-without-time-column"],
)
def test_cross_field_errors_name_the_line_of_the_key(text: str, key: str, line_text: str) -> None:
    """A cross-field check names its key and that key's line, not "(top level) (line 1)"."""
    message = spec_error(text)
    assert "(top level)" not in message, message
    assert re.search(rf"^  {re.escape(key)} \(line {line_of(text, line_text)}\)", message, re.M), (
        message
    )


def test_sequence_item_errors_name_the_line_of_the_item() -> None:
    """``triggers.2`` is on the line of the third trigger, not of the first."""
    text = edit("  - manual: {}\n", "  - manual: {}\n    data_volume: {rows: 5}\n")
    message = spec_error(text)
    assert f"triggers.2 (line {line_of(text, '- manual:')})" in message, message


def test_zero_duration_window_is_rejected() -> None:
    """``last: 0d`` selects no rows at all: an out-of-range value caught at load (BI-09)."""
    message = spec_error(edit("window: {rows: 2000}", "window: {last: 0d}"))
    assert "data.window.last" in message
    assert "'0d'" in message or "0:00:00" in message


# -- YAML safety: no tags, no templates, no duplicates --------------------------------------


@pytest.mark.parametrize(
    "tagged",
    [
        '!!python/object/apply:os.system ["touch PWNED"]',
        "!!python/name:os.system",
        '!!python/object/new:os.system ["touch PWNED"]',
    ],
    ids=["object-apply", "name", "object-new"],
)
def test_python_tags_are_refused_and_never_executed(
    tagged: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    text = edit("  seed: 3\n", f"  seed: {tagged}\n")
    path = tmp_path / "retrainer.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert message.startswith(f"{path}:"), message
    assert f"line {line_of(text, 'seed:')}" in message, message
    assert tagged.split()[0].removeprefix("!!") in message, message
    assert not (tmp_path / "PWNED").exists()
    assert list(tmp_path.iterdir()) == [path]


def test_python_tag_error_names_the_key() -> None:
    """SEC-11: the parse error names the key path holding the tag, not only its position."""
    message = spec_error(edit("  seed: 3\n", "  seed: !!python/name:os.system\n"))
    assert "train.seed" in message, message


def test_template_syntax_stays_a_literal_string() -> None:
    text = edit("  params: {max_iter: 200}\n", '  params: {max_iter: 200, note: "{{ 7*7 }}"}\n')
    text = edit("  time_column: ts\n", "  time_column: ts\n  query: '{{ 7*7 }}{% raw %}'\n", text)
    spec = parse_spec(text, source=SOURCE)
    assert spec.train.params["note"] == "{{ 7*7 }}"
    assert spec.data.query == "{{ 7*7 }}{% raw %}"
    assert "49" not in spec.model_dump_json()


def test_template_syntax_in_a_key_field_is_checked_not_rendered() -> None:
    text = edit("target: y", 'target: "{{ 7*7 }}"')
    spec = parse_spec(text, source=SOURCE)
    assert spec.model.target == "{{ 7*7 }}"
    message = spec_error(edit("name: toy", 'name: "{{ 7*7 }}"'))
    assert "model.name" in message
    assert "given: '{{ 7*7 }}'" in message


def test_unquoted_template_braces_are_a_spec_error_not_a_crash() -> None:
    """``params: {{ 7*7 }}`` is a YAML mapping used as a key: a SpecError, never a TypeError."""
    text = edit("  params: {max_iter: 200}\n", "  params: {{ 7*7 }}\n")
    message = spec_error(text)
    assert f"line {line_of(text, 'params:')}" in message, message


@pytest.mark.parametrize(
    ("text", "key", "second"),
    [
        (edit("  seed: 3\n", "  seed: 3\n  seed: 4\n"), "seed", "seed: 4"),
        (BASE + "store: sqlite:///a.db\nstore: sqlite:///b.db\n", "store", "sqlite:///b.db"),
        (edit("by: time}", "by: time, by: random}"), "by", "by: random"),
        (BASE + "model: {}\n", "model", "model: {}"),
    ],
    ids=["nested", "top-level", "flow-mapping", "whole-section"],
)
def test_duplicate_keys_are_refused_naming_key_and_line(text: str, key: str, second: str) -> None:
    message = spec_error(text)
    assert f"key {key!r} is given twice" in message, message
    assert f"line {line_of(text, second)}" in message, message


def test_invalid_yaml_names_line_and_column() -> None:
    text = edit("  seed: 3\n", "  seed: 3: 4\n")
    message = spec_error(text)
    assert "not valid YAML" in message
    assert f"line {line_of(text, 'seed: 3: 4')}, column 10" in message, message
    assert "mapping values are not allowed" in message


def test_tab_indentation_names_line_and_column() -> None:
    message = spec_error("model:\n\tname: toy\n")
    assert "not valid YAML at line 2, column 1" in message, message


def test_invalid_utf8_names_the_byte_offset(tmp_path: Path) -> None:
    data = BASE.encode()
    offset = data.index(b"toy")
    path = tmp_path / "retrainer.yaml"
    path.write_bytes(data[:offset] + b"t\xffy" + data[offset + 3 :])
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert f"byte offset {offset + 1}" in message, message
    assert "UTF-8" in message


def test_missing_spec_file_suggests_init(tmp_path: Path) -> None:
    path = tmp_path / "retrainer.yaml"
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(path) in str(info.value)
    assert "retrainer init" in str(info.value)


@pytest.mark.parametrize(
    "text",
    ["", "\n\n", "# only a comment\n", "- model\n- data\n", "just a string\n", "42\n"],
    ids=["empty", "blank-lines", "comment-only", "list", "string", "number"],
)
def test_top_level_must_be_a_mapping(text: str) -> None:
    message = spec_error(text)
    assert "expected a mapping of sections" in message, message


@pytest.mark.parametrize(
    ("text", "given"),
    [("", "empty"), ("# only a comment\n", "empty"), ("- model\n- data\n", "list")],
    ids=["empty", "comment-only", "list"],
)
def test_top_level_error_says_what_was_given(text: str, given: str) -> None:
    """Expected *and* given: "the file is empty" / "got a list", not only what was expected."""
    message = spec_error(text)
    assert given in message, message


# -- spec_hash -----------------------------------------------------------------------------

REORDERED_FLOW = """\
# the same spec: sections and keys in another order, flow style, comments, other spellings
approval: {mode: auto}
evaluate: {bootstrap_resamples: 200, non_inferiority_margin: 0.02, metric: roc_auc}
train: {seed: 3, params: {max_iter: 200}, estimator: sklearn.linear_model.LogisticRegression}
triggers: [{performance: {min_rows: 50, below: 0.7}}, {data_volume: {rows: 600}}, {manual: {}}]
contract: {min_rows: 50}
data:
  holdout:
    by: time
    fraction: 0.25
  window:
    rows: 2000
  time_column: "ts"
  source: 'data/batches'
model:
  features: {categorical: [color], numeric: [x1, x2]}
  target: y
  task: classification
  name: toy
"""


def test_spec_hash_is_stable_for_equal_specs_written_differently() -> None:
    a, b = parse_spec(BASE), parse_spec(REORDERED_FLOW)
    assert a == b
    assert spec_hash(a) == spec_hash(b)
    assert re.fullmatch(r"[0-9a-f]{64}", spec_hash(a))
    assert spec_hash(parse_spec(BASE)) == spec_hash(a)  # deterministic across parses


def test_spec_hash_counts_defaults_and_duration_spellings_as_equal() -> None:
    explicit = edit("  min_rows: 50\n", "  min_rows: 50\n  extra_columns: allow\n") + (
        "store: sqlite:///.retrainer/retrainer.db\nartifacts: file://.retrainer/artifacts\n"
    )
    assert spec_hash(parse_spec(explicit)) == spec_hash(parse_spec(BASE))
    two_weeks = edit("window: {rows: 2000}", "window: {last: 2w}")
    fourteen_days = edit("window: {rows: 2000}", "window: {last: 14d}")
    assert spec_hash(parse_spec(two_weeks)) == spec_hash(parse_spec(fourteen_days))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("seed: 3", "seed: 4"),
        ("max_iter: 200", "max_iter: 201"),
        ("non_inferiority_margin: 0.02", "non_inferiority_margin: 0.03"),
        ("mode: auto", "mode: manual"),
        ("numeric: [x1, x2]", "numeric: [x2, x1]"),
        ("{rows: 600}", "{rows: 601}"),
    ],
)
def test_spec_hash_changes_when_a_value_changes(old: str, new: str) -> None:
    assert spec_hash(parse_spec(edit(old, new))) != spec_hash(parse_spec(BASE))


def test_spec_is_frozen() -> None:
    spec = parse_spec(BASE)
    with pytest.raises(ValueError, match="frozen"):
        spec.train.seed = 4  # type: ignore[misc]
    assert isinstance(spec, PipelineSpec)


# -- parse_duration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90d", timedelta(days=90)),
        ("12h", timedelta(hours=12)),
        ("2w", timedelta(weeks=2)),
        ("30m", timedelta(minutes=30)),
        ("45s", timedelta(seconds=45)),
        (" 3 d ", timedelta(days=3)),
        ("1095d", timedelta(days=1095)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_parse_duration_passes_a_timedelta_through() -> None:
    assert parse_duration(timedelta(hours=5)) == timedelta(hours=5)


@pytest.mark.parametrize(
    "bad", ["90 days", "90", "d", "1.5d", "-1d", "3D", "3y", "", "90d30m", 90, None, 1.5]
)
def test_parse_duration_rejects_other_input(bad: object) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(bad)
    message = str(info.value)
    assert "expected a duration such as '90d'" in message
    assert repr(bad) in message


@pytest.mark.parametrize(("text", "dumped"), [("90d", "90d"), ("14d", "2w"), ("36h", "36h")])
def test_durations_dump_in_the_spec_spelling(text: str, dumped: str) -> None:
    spec = parse_spec(edit("window: {rows: 2000}", f"window: {{last: {text}}}"))
    assert spec.model_dump(mode="json")["data"]["window"]["last"] == dumped
