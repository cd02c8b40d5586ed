"""The direct LightGBM trainer of benchmarks/dask_scale.py (``--trainer direct``).

``lightgbm.DaskLGBMClassifier`` on ``dask.dataframe.read_parquet`` partitions, one per
file, the categoricals as codes of their fixed reference levels (``--categoricals
codes``) or left out, all features float32, as a Dask array or frame
(``--train-input``), partition ``i`` persisted on worker ``i % n`` (``--placement``).
:func:`direct_model` wraps the trained booster for scoring the raw current files.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import numpy as np
from scale_data import CATEGORICAL, NUMERIC, TARGET, Dataset, levels


def _codes(part: Any, dtype: str) -> Any:
    """Categoricals as codes of the fixed reference levels (-1 -> NaN for unseen)."""
    import pandas as pd

    out = part.copy()
    for name in CATEGORICAL:
        codes = pd.Index(levels(name)).get_indexer(part[name]).astype(dtype)
        codes[codes < 0] = np.nan
        out[name] = codes
    return out


def training_inputs(args: Any, dataset: Dataset) -> tuple[Any, Any, list[str]]:
    """Lazy X (float32) and y of ``dataset`` as LightGBM's Dask estimator takes them."""
    import dask.dataframe as dd

    features = NUMERIC + (CATEGORICAL if args.categoricals == "codes" else [])
    ddf = dd.read_parquet(list(dataset.paths), columns=[*features, TARGET], split_row_groups=False)
    if ddf.npartitions != len(dataset.paths):
        raise RuntimeError(f"{ddf.npartitions} partitions for {len(dataset.paths)} files")
    if args.categoricals == "codes":
        meta = ddf._meta.assign(**{c: np.float32(0) for c in CATEGORICAL})
        ddf = ddf.map_partitions(_codes, "float32", meta=meta)
    x, y = ddf[features], ddf[TARGET]
    if args.train_input == "array":
        lengths = list(dataset.part_rows)
        x = x.to_dask_array(lengths=lengths).astype(np.float32)
        y = y.to_dask_array(lengths=lengths)
    return x, y, features


def place(client: Any, x: Any, y: Any, *, round_robin: bool) -> tuple[Any, Any]:
    """``x`` and ``y`` persisted on the workers: partition ``i`` on worker ``i % n``
    (sorted by address), or where the scheduler puts them."""
    if not round_robin:
        placed = client.persist([x, y])
        return placed[0], placed[1]
    import dask.array as da
    import dask.dataframe as dd

    workers = sorted(client.scheduler_info()["workers"])
    is_array = isinstance(x, da.Array)
    xb, yb = (x.blocks, y.blocks) if is_array else (x.partitions, y.partitions)
    xs, ys = [], []
    for i in range(x.numblocks[0] if is_array else x.npartitions):
        xi, yi = client.persist([xb[i], yb[i]], workers=[workers[i % len(workers)]])
        xs.append(xi)
        ys.append(yi)
    if is_array:
        return da.concatenate(xs, axis=0), da.concatenate(ys, axis=0)
    return dd.concat(xs), dd.concat(ys)


def train_direct(ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    """``lightgbm.DaskLGBMClassifier`` on float32 features (the module docstring);
    ``ctx`` is ``dask_scale.Context``. The model goes to ``ctx.results``."""
    import lightgbm as lgb
    from distributed import wait

    args = ctx.args
    x, y, features = training_inputs(args, ctx.reference)
    categorical = (
        [features.index(c) for c in CATEGORICAL] if args.categoricals == "codes" else "auto"
    )
    ctx.sampler.step("train:read")
    t0 = time.perf_counter()
    x, y = place(ctx.client, x, y, round_robin=args.placement == "round-robin")
    wait([x, y])
    load_s = time.perf_counter() - t0
    placement: dict[str, int] = {}
    for holders in ctx.client.who_has(x).values():
        for address in holders:
            placement[address] = placement.get(address, 0) + 1
    ctx.sampler.step("train:fit")
    t0 = time.perf_counter()
    model = lgb.DaskLGBMClassifier(client=ctx.client, n_jobs=1, random_state=args.seed, **params)
    model.fit(x, y, categorical_feature=categorical)
    fit_s = time.perf_counter() - t0
    ctx.results["model"] = model
    ctx.results["features"] = features
    booster = model.booster_
    del x, y
    return {
        "read_persist_s": load_s,
        "fit_s": fit_s,
        "partitions_per_worker": dict(sorted(placement.items())),
        "features": len(features),
        "categoricals": args.categoricals,
        "train_input": args.train_input,
        "trees": booster.num_trees(),
        "settings": {**params, "n_jobs": 1},
    }


def _as_trained(frame: Any, features: list[str], as_frame: bool) -> Any:
    """The raw feature columns as the model was trained on them (float32)."""
    coded = _codes(frame, "float32") if set(CATEGORICAL) & set(features) else frame
    x = coded[features].astype(np.float32)
    return x if as_frame else x.to_numpy()


def direct_model(ctx: Any) -> Any:
    """The trained model as a pipeline that takes the raw feature columns."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    features, as_frame = ctx.results["features"], ctx.args.train_input == "frame"
    to_features = partial(_as_trained, features=features, as_frame=as_frame)
    return make_pipeline(FunctionTransformer(to_features), ctx.results["model"].to_local())
