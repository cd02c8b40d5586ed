"""The spec's ``contract`` section: what every batch must satisfy (docs/contracts.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    model_validator,
)

from retrainer.spec_base import Section

__all__ = ["ColumnRule", "ContractSection", "DuplicatesRule", "VolumeRule"]


class ColumnRule(Section):
    """Rules for one column of every batch; a column listed here is required.

    Numbers are judged without conversion: ``dtype: integer`` accepts whole numbers
    (a float column of whole numbers too, as CSV files with gaps give), never ``"12"``.
    """

    dtype: Literal["numeric", "integer", "float", "string", "boolean", "datetime"] | None = Field(
        default=None, description="the kind of values the column must hold"
    )
    min: float | None = Field(default=None, description="smallest allowed value (inclusive)")
    max: float | None = Field(default=None, description="largest allowed value (inclusive)")
    allowed: list[str | int | float | bool] | None = Field(
        default=None, min_length=1, description="the known categories"
    )
    max_unseen_share: float = Field(
        default=0.01,
        ge=0.0,
        le=1.0,
        description="share of non-null values outside 'allowed' tolerated before UNSEEN_CATEGORY",
    )
    nullable: bool = Field(default=True, description="false: any null fails (NULL_STORM)")
    max_null_share: float | None = Field(
        default=None, ge=0.0, le=1.0, description="largest share of nulls (NULL_STORM above)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> ColumnRule:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"expected min <= max, got min {self.min} and max {self.max}")
        if not self.nullable and self.max_null_share:
            raise ValueError("'nullable: false' allows no nulls; drop 'max_null_share'")
        bounded = self.min is not None or self.max is not None
        if bounded and self.dtype in ("string", "boolean", "datetime"):
            raise ValueError(f"'min'/'max' need a numeric dtype, got dtype {self.dtype!r}")
        return self


class DuplicatesRule(Section):
    """Exact duplicate rows, and rows sharing a key: ``allow`` (count them), ``drop`` (keep
    one: the first duplicate row, the last row of a key) or ``reject`` the batch."""

    rows: Literal["allow", "drop", "reject"] = "drop"
    key: list[str] | None = Field(
        default=None, min_length=1, description="columns that identify a row"
    )
    keys: Literal["allow", "drop", "reject"] = Field(
        default="reject", description="policy for rows sharing a key"
    )


class VolumeRule(Section):
    """Flag (``VOLUME_ANOMALY``) a batch this many times larger or smaller than the
    previous accepted batch; a flagged batch is used, but a candidate trained on it is
    not promoted automatically."""

    max_ratio: float = Field(default=10.0, gt=1.0, description="flag at >= this many times")
    min_ratio: float = Field(default=0.1, gt=0.0, lt=1.0, description="flag at <= this share")


class ContractSection(Section):
    """What every batch must satisfy before it is used; failing batches are quarantined.

    Reference (codes, examples, the quarantine workflow): docs/contracts.md.
    """

    required_columns: list[str] | None = Field(
        default=None, description="default: features, target and time column"
    )
    min_rows: int = Field(default=1, ge=1)
    max_rows: int | None = Field(default=None, ge=1, description="larger batches fail")
    extra_columns: Literal["allow", "reject"] = Field(
        default="allow", description="allow: ignored and recorded (EXTRA_COLUMN warning)"
    )
    columns: dict[str, ColumnRule] = Field(
        default_factory=dict, description="per-column rules ('retrainer contract infer')"
    )
    null_tolerance: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="a feature's null share may exceed the champion's training data by this",
    )
    unseen_categories: Literal["flag", "reject"] = Field(
        default="flag", description="what UNSEEN_CATEGORY does to a batch"
    )
    duplicates: DuplicatesRule = Field(default_factory=DuplicatesRule)
    volume: VolumeRule = Field(default_factory=VolumeRule)
    time_order: Literal["none", "batch", "watermark"] = Field(
        default="none",
        description="batch: time never goes backwards within a batch; watermark: also no "
        "row older than the newest accepted row",
    )
    examples: int = Field(default=5, ge=1, le=100, description="failing rows shown per failure")

    @model_validator(mode="after")
    def _bounds(self) -> ContractSection:
        if self.max_rows is not None and self.max_rows < self.min_rows:
            raise ValueError(
                f"expected max_rows >= min_rows, got max_rows {self.max_rows} and "
                f"min_rows {self.min_rows}"
            )
        return self
