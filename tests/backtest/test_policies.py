"""Naming the policies to compare."""

from __future__ import annotations

from pathlib import Path

import pytest
from backkit import SPEC

from retrainer.backtest.policies import parse_policies, policy_spec
from retrainer.errors import SpecError
from retrainer.spec import parse_spec


def test_policies_parse_with_their_arguments() -> None:
    got = parse_policies(" never, every_batch ,periodic:4,spec,spec:other.yaml")
    assert [(p.name, p.kind, p.every, p.spec_path) for p in got] == [
        ("never", "never", 0, None),
        ("every_batch", "every_batch", 0, None),
        ("periodic:4", "periodic", 4, None),
        ("spec", "spec", 0, None),
        ("spec:other.yaml", "spec", 0, Path("other.yaml")),
    ]
    assert [p.gated for p in got] == [False, False, True, True, True]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sometimes", "'sometimes' is not a policy"),
        ("periodic:0", "'periodic:0' is not a policy"),
        ("periodic", "'periodic' is not a policy"),
        ("never:3", "'never:3' is not a policy"),
        ("never,never", "never listed more than once"),
        (" , ", "name at least one policy"),
    ],
)
def test_bad_policy_lists_are_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_policies(text)


def test_another_spec_may_change_triggers_but_not_the_model(tmp_path: Path) -> None:
    main = parse_spec(SPEC, source="main")
    other = tmp_path / "calm.yaml"
    other.write_text(SPEC.replace("below: 0.7", "below: 0.5"))
    (policy,) = parse_policies(f"spec:{other}")
    assert policy_spec(policy, main).triggers[0].performance.below == 0.5  # type: ignore[union-attr]
    other.write_text(SPEC.replace("numeric: [x1, x2]", "numeric: [x1]"))
    with pytest.raises(SpecError, match=r"model.features differs from the main spec's"):
        policy_spec(policy, main)
    other.write_text(SPEC.replace("time_column: day", "time_column: other"))
    with pytest.raises(SpecError, match=r"data.time_column 'other' differs"):
        policy_spec(policy, main)
