"""Reference profiles: everything drift checks need from the reference, computed once.

A :class:`ReferenceProfile` holds, per numeric column, the sorted finite values (so KS
and Wasserstein of a batch cost ``O(batch · log reference)``; their compensated prefix
sums are computed when first needed), the NaN and ``±inf`` counts, quantile bin cuts and
counts for PSI/JS, and mean/std/IQR and the sample variance; per categorical column
the count of each category and of missing values; and a seeded sample of whole
reference rows for the domain classifier. Checking a batch never reads the reference frame again.

:meth:`ReferenceProfile.to_bytes` writes an uncompressed ``.npz`` (numpy arrays plus a
JSON header) whose bytes depend only on the content (fixed zip timestamps), so it can be
stored content-addressed; :meth:`ReferenceProfile.from_bytes` reads it back with
``allow_pickle=False`` and validates it.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from retrainer.errors import DataSourceError
from retrainer.monitor.drift.columns import category_counts, split_special
from retrainer.monitor.drift.moments import Moments
from retrainer.monitor.drift.partial import (
    PROFILE_ROWS,
    NumericSummary,
    OnePartition,
    PartitionMapper,
    gather,
)
from retrainer.monitor.drift.stats import (
    LocationStats,
    SortedSample,
    bin_counts,
    quantile_cuts,
    sorted_quantiles,
)

__all__ = ["CategoricalProfile", "NumericProfile", "ReferenceProfile"]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]

FORMAT = "retrainer.reference_profile"
VERSION = 3
"""v2 adds each numeric column's sample variance (``var``) and no longer stores the
prefix sums (recomputed when first needed: a third of the size). v3 adds ``n_finite``
(a reference larger than ``profile_rows`` keeps a sample of its values). v1 profiles
are still read, their variance derived from the stored std (``std**2 · n / (n - 1)``)."""
_READABLE = (1, 2, 3)
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def _num(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True, eq=False)
class NumericProfile:
    """One numeric reference column.

    Attributes:
        sample: The finite values, sorted (prefix sums on demand).
        n_missing / n_posinf / n_neginf: NaN, +inf and -inf counts.
        n_bins: The number of quantile bins ``cuts``/``bin_counts`` were made for.
        cuts / bin_counts: :func:`~retrainer.monitor.drift.stats.quantile_cuts` of the
            finite values and the reference count in each bin.
        mean / std / iqr: Of the finite values (std with ddof=0); None when there are none.
        var: The sample variance (ddof=1) of the finite values, for the t-test; None
            with fewer than two values or when it overflows.
        n_finite: The finite values in the whole reference. It exceeds ``sample.n``
            when the reference had more rows than a profile keeps (``profile_rows``):
            ``sample`` then holds the values of a uniform sample of rows, while the
            counts and mean/std/var are exact over all rows. None: ``sample.n``.
    """

    name: str
    sample: SortedSample
    n_missing: int
    n_posinf: int
    n_neginf: int
    n_bins: int
    cuts: FloatArray
    bin_counts: IntArray
    mean: float | None
    std: float | None
    iqr: float | None
    var: float | None = None
    n_finite: int | None = None

    @classmethod
    def from_values(cls, name: str, values: FloatArray, *, n_bins: int = 10) -> NumericProfile:
        """Profile float64 ``values`` (NaN and ``±inf`` allowed)."""
        finite, nan, posinf, neginf = split_special(values)
        return cls.from_parts(
            name,
            np.sort(finite),
            NumericSummary(nan, posinf, neginf, Moments.of(finite)),
            n_bins=n_bins,
        )

    @classmethod
    def from_parts(
        cls, name: str, values: FloatArray, summary: NumericSummary, *, n_bins: int = 10
    ) -> NumericProfile:
        """Profile from sorted finite ``values`` (all of them, or those of a sample of
        rows) and the exact counts and moments of the whole column."""
        sample = SortedSample.from_sorted(values)
        cuts = quantile_cuts(sample.values, n_bins)
        iqr = None
        if sample.n:
            q1, q3 = sorted_quantiles(sample.values, [0.25, 0.75])
            iqr = _num(float(q3 - q1))
        moments = summary.moments
        return cls(
            name=name,
            sample=sample,
            n_missing=summary.n_missing,
            n_posinf=summary.n_posinf,
            n_neginf=summary.n_neginf,
            n_bins=n_bins,
            cuts=cuts,
            bin_counts=bin_counts(cuts, sample.values, presorted=True),
            mean=moments.mean,
            std=moments.std,
            iqr=iqr,
            var=moments.var,
            n_finite=None if moments.n == sample.n else moments.n,
        )

    @property
    def count(self) -> int:
        """Finite values (in the whole reference)."""
        return self.sample.n if self.n_finite is None else self.n_finite

    @property
    def n_rows(self) -> int:
        """All rows: finite, missing and infinite."""
        return self.count + self.n_missing + self.n_posinf + self.n_neginf

    @property
    def spread(self) -> float | None:
        """The scale Wasserstein distances are divided by: the std, else the IQR, else
        None. The std is 0 only for a constant reference (then the IQR is 0 too), so the
        IQR is the fallback for a std that overflowed (values beyond ~1e154)."""
        for value in (self.std, self.iqr):
            if value is not None and math.isfinite(value) and value > 0:
                return value
        return None

    @property
    def constant(self) -> bool:
        """All finite values equal (and there is at least one)."""
        v = self.sample.values
        return bool(v.size) and bool(v[0] == v[-1])

    @property
    def location(self) -> LocationStats | None:
        """Count, mean and sample variance for the t-test; None when they are not
        known (fewer than two values, or an overflow)."""
        if self.mean is None or self.var is None or self.count < 2:
            return None
        return LocationStats(self.count, self.mean, self.var)

    def bins(self, n_bins: int) -> tuple[FloatArray, IntArray]:
        """(cuts, reference counts) for ``n_bins`` quantile bins: the stored ones, or
        recomputed from the sorted values in ``O(n_bins · log n)``."""
        if n_bins == self.n_bins:
            return self.cuts, self.bin_counts
        cuts = quantile_cuts(self.sample.values, n_bins)
        return cuts, bin_counts(cuts, self.sample.values, presorted=True)


@dataclass(frozen=True, eq=False)
class CategoricalProfile:
    """One categorical reference column: each category's count (most frequent first,
    ties by name) and the missing count. Categories are string keys
    (:func:`~retrainer.monitor.drift.columns.category_keys`)."""

    name: str
    categories: tuple[str, ...]
    counts: IntArray
    n_missing: int

    @classmethod
    def from_keys(cls, name: str, keys: np.ndarray[Any, Any]) -> CategoricalProfile:
        """Profile category keys (None for missing)."""
        present, missing = category_counts(keys)
        return cls.from_counts(name, present, missing)

    @classmethod
    def from_counts(cls, name: str, present: Mapping[str, int], missing: int) -> CategoricalProfile:
        """Profile from the count of each category key and of missing values."""
        ordered = sorted(present.items(), key=lambda kv: (-kv[1], kv[0]))
        return cls(
            name=name,
            categories=tuple(k for k, _ in ordered),
            counts=np.array([c for _, c in ordered], dtype=np.int64),
            n_missing=missing,
        )

    @property
    def count(self) -> int:
        """Non-missing values."""
        return int(self.counts.sum())

    @property
    def n_rows(self) -> int:
        """All rows, missing included."""
        return self.count + self.n_missing


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """What drift checks need from a reference frame (see the module docstring).

    Attributes:
        n_rows: Rows of the reference frame.
        numeric / categorical: Column profiles by name, in the order given.
        sample: Up to ``sample_rows`` reference rows drawn with ``seed`` (numeric
            columns as float64, categorical ones as string keys), for the domain
            classifier.
    """

    n_rows: int
    numeric: Mapping[str, NumericProfile]
    categorical: Mapping[str, CategoricalProfile]
    sample: pd.DataFrame
    seed: int

    @classmethod
    def build(
        cls,
        frame: Any,
        numeric: Sequence[str] = (),
        categorical: Sequence[str] = (),
        *,
        psi_bins: int = 10,
        sample_rows: int = 20_000,
        seed: int = 0,
        profile_rows: int = PROFILE_ROWS,
        executor: PartitionMapper | None = None,
    ) -> ReferenceProfile:
        """Profile ``frame``'s ``numeric`` and ``categorical`` columns.

        ``frame`` is a pandas frame, or whatever ``executor`` takes (Parquet files, a
        Dask dataframe): the profile is built partition by partition
        (:mod:`~retrainer.monitor.drift.partial`) and is the same on every executor.
        A reference of more than ``profile_rows`` rows keeps the numeric values of
        that many rows, drawn uniformly; counts and moments stay exact.

        Raises:
            ValueError: a column is named twice, or the options are out of range.
            DataSourceError: a column is missing, or a numeric one holds non-numbers.
        """
        names = [*numeric, *categorical]
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"expected each column once, got {', '.join(map(repr, twice))} twice")
        if psi_bins < 2 or sample_rows < 0 or profile_rows < 1:
            raise ValueError(
                "expected psi_bins >= 2, sample_rows >= 0 and profile_rows >= 1, got "
                f"{psi_bins}, {sample_rows}, {profile_rows}"
            )
        got = gather(
            executor or OnePartition(),
            frame,
            numeric,
            categorical,
            sample_rows=sample_rows,
            seed=seed,
            profile_rows=profile_rows,
        )
        nums = {
            name: NumericProfile.from_parts(
                name,
                got.values[name],
                NumericSummary(
                    n_missing=sum(s.numeric[name].n_missing for s in got.summaries),
                    n_posinf=sum(s.numeric[name].n_posinf for s in got.summaries),
                    n_neginf=sum(s.numeric[name].n_neginf for s in got.summaries),
                    moments=Moments.merge(s.numeric[name].moments for s in got.summaries),
                ),
                n_bins=psi_bins,
            )
            for name in numeric
        }
        cats: dict[str, CategoricalProfile] = {}
        for name in categorical:
            present: dict[str, int] = {}
            missing = 0
            for s in got.summaries:
                counts, absent = s.categorical[name]
                missing += absent
                for key, count in counts.items():
                    present[key] = present.get(key, 0) + count
            cats[name] = CategoricalProfile.from_counts(name, present, missing)
        n_rows = sum(s.rows for s in got.summaries)
        return cls(n_rows=n_rows, numeric=nums, categorical=cats, sample=got.sample, seed=seed)

    @property
    def features(self) -> list[str]:
        """Numeric columns, then categorical ones."""
        return [*self.numeric, *self.categorical]

    def to_bytes(self) -> bytes:
        """The profile as an uncompressed ``.npz`` with a JSON header (no pickle)."""
        arrays: dict[str, np.ndarray[Any, Any]] = {}
        header: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "n_rows": self.n_rows,
            "seed": self.seed,
            "sample_rows": len(self.sample),
            "numeric": [],
            "categorical": [],
        }
        for i, p in enumerate(self.numeric.values()):
            header["numeric"].append(
                {
                    "name": p.name,
                    "n_missing": p.n_missing,
                    "n_posinf": p.n_posinf,
                    "n_neginf": p.n_neginf,
                    "n_bins": p.n_bins,
                    "mean": p.mean,
                    "std": p.std,
                    "iqr": p.iqr,
                    "var": p.var,
                    "n_finite": p.n_finite,
                }
            )
            arrays[f"n{i}_values"] = p.sample.values
            arrays[f"n{i}_cuts"] = p.cuts
            arrays[f"n{i}_bin_counts"] = p.bin_counts
            arrays[f"n{i}_sample"] = self.sample[p.name].to_numpy(dtype=np.float64)
        for i, c in enumerate(self.categorical.values()):
            header["categorical"].append(
                {"name": c.name, "categories": list(c.categories), "n_missing": c.n_missing}
            )
            arrays[f"c{i}_counts"] = c.counts
            index = {k: j for j, k in enumerate(c.categories)}
            arrays[f"c{i}_sample"] = np.array(
                [index.get(k, -1) if isinstance(k, str) else -1 for k in self.sample[c.name]],
                dtype=np.int64,
            )
        arrays["header"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
            for key in sorted(arrays):
                info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_TIME)
                with zf.open(info, "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, np.ascontiguousarray(arrays[key]))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ReferenceProfile:
        """Read :meth:`to_bytes` output back.

        Raises:
            DataSourceError: the bytes are not a valid reference profile.
        """
        if not data.startswith(b"PK\x03\x04"):
            raise DataSourceError("not a valid reference profile: not an .npz archive")
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            return cls._from_arrays(arrays)
        except DataSourceError:
            raise
        except (
            ValueError,
            KeyError,
            TypeError,
            AttributeError,
            OSError,
            EOFError,
            zipfile.BadZipFile,
        ) as exc:
            raise DataSourceError(f"not a valid reference profile: {exc}") from exc

    @classmethod
    def _from_arrays(cls, arrays: Mapping[str, np.ndarray[Any, Any]]) -> ReferenceProfile:
        header = json.loads(bytes(arrays["header"].astype(np.uint8)).decode("utf-8"))
        version = header.get("version")
        if header.get("format") != FORMAT or version not in _READABLE:
            raise DataSourceError(
                f"not a reference profile of format {FORMAT} v{VERSION}: "
                f"got {header.get('format')!r} v{header.get('version')!r}"
            )
        take = int(header["sample_rows"])
        nums: dict[str, NumericProfile] = {}
        sample_cols: dict[str, Any] = {}
        for i, h in enumerate(header["numeric"]):
            sample = SortedSample.from_sorted(arrays[f"n{i}_values"])  # v1's prefix sums: unused
            cuts = np.asarray(arrays[f"n{i}_cuts"], dtype=np.float64)
            counts = np.asarray(arrays[f"n{i}_bin_counts"], dtype=np.int64)
            if counts.size != cuts.size + 1 or int(counts.sum()) != sample.n:
                raise ValueError(f"bin counts of column {h['name']!r} do not match its values")
            nums[h["name"]] = NumericProfile(
                name=h["name"],
                sample=sample,
                n_missing=int(h["n_missing"]),
                n_posinf=int(h["n_posinf"]),
                n_neginf=int(h["n_neginf"]),
                n_bins=int(h["n_bins"]),
                cuts=cuts,
                bin_counts=counts,
                mean=h["mean"],
                std=h["std"],
                iqr=h["iqr"],
                var=h["var"] if version >= 2 else _v1_var(h["std"], sample.n),
                n_finite=_n_finite(h.get("n_finite"), sample.n),
            )
            sample_cols[h["name"]] = _sized(arrays[f"n{i}_sample"], np.float64, take)
        cats: dict[str, CategoricalProfile] = {}
        for i, h in enumerate(header["categorical"]):
            categories = tuple(str(k) for k in h["categories"])
            counts = np.asarray(arrays[f"c{i}_counts"], dtype=np.int64)
            if counts.size != len(categories):
                raise ValueError(f"counts of column {h['name']!r} do not match its categories")
            cats[h["name"]] = CategoricalProfile(
                name=h["name"], categories=categories, counts=counts, n_missing=int(h["n_missing"])
            )
            codes = _sized(arrays[f"c{i}_sample"], np.int64, take)
            if codes.size and (codes.min() < -1 or codes.max() >= len(categories)):
                raise ValueError(f"sample codes of column {h['name']!r} are out of range")
            lookup = np.array([*categories, None], dtype=object)
            sample_cols[h["name"]] = pd.Series(lookup[codes], dtype=object)  # -1 -> None
        names = [*nums, *cats]
        sample_frame = pd.DataFrame(sample_cols, index=pd.RangeIndex(take), columns=names)
        return cls(
            n_rows=int(header["n_rows"]),
            numeric=nums,
            categorical=cats,
            sample=sample_frame,
            seed=int(header["seed"]),
        )


def _n_finite(value: Any, kept: int) -> int | None:
    """A stored ``n_finite``: None (all values kept), or at least the values kept."""
    if value is None:
        return None
    if not isinstance(value, int) or value < kept:
        raise ValueError(f"expected n_finite >= {kept} (the values kept), got {value!r}")
    return value


def _v1_var(std: float | None, n: int) -> float | None:
    """A v1 profile's sample variance from its std (ddof=0)."""
    if std is None or n < 2:
        return None
    return _num(std * std * n / (n - 1))


def _sized(array: np.ndarray[Any, Any], dtype: Any, size: int) -> np.ndarray[Any, Any]:
    out = np.asarray(array, dtype=dtype).ravel()
    if out.size != size:
        raise ValueError(f"expected a sample of {size} rows, got {out.size}")
    return out
