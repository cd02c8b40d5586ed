"""Save a pickled scikit-learn estimator as an MLflow model (run with MLflow's own venv).

The serving benchmark (``benchmarks/serve_bench.py``) pickles the champion it loaded in
the project venv and runs this script with ``benchmarks/.venv-mlflow/bin/python``; both
venvs pin the same scikit-learn, so the object is the same fitted estimator. The pyfunc
answers with ``predict_proba``: the probabilities retrainer's endpoint also computes
(its label is their argmax). Usage::

    benchmarks/.venv-mlflow/bin/python benchmarks/serve_mlflow_export.py MODEL.pkl OUT_DIR
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    src, out = Path(argv[0]), Path(argv[1])
    import mlflow
    import mlflow.sklearn
    import sklearn

    with src.open("rb") as f:
        estimator = pickle.load(f)
    mlflow.sklearn.save_model(
        estimator,
        str(out),
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
        pyfunc_predict_fn="predict_proba",
    )
    json.dump({"mlflow": mlflow.__version__, "sklearn": sklearn.__version__}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
