"""Safe model serialization: skops only, with trust decided by retrainer, never by the file.

A model is saved with :func:`skops.io.dumps`. Loading first lists the types the file
would instantiate (without importing or running anything) and refuses the file unless
every type is trusted: skops's defaults (scikit-learn estimators, numpy and
``scipy.special`` ufuncs, numpy dtypes and bit generators, plain containers),
:data:`DEFAULT_TRUSTED_TYPES`, and the spec's ``train.trusted_types`` (exact names or
``package.*`` patterns). Pickle and joblib files are never loaded.

skops only checks *types*, not contents: a crafted scikit-learn tree whose node indices
point outside its arrays loads fine and then reads out-of-bounds memory at predict
time. So the trees and sparse matrices of a loaded model are checked structurally
before it is returned.

Example:
    >>> from sklearn.linear_model import Ridge
    >>> model = Ridge().fit([[0.0], [1.0]], [0.0, 1.0])
    >>> load_model(dump_model(model)).predict([[2.0]]).round(3).tolist()
    [1.0]
"""

from __future__ import annotations

import logging
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from numbers import Integral
from types import ModuleType
from typing import Any, NoReturn

import numpy as np
import scipy.sparse
import skops.io
from sklearn.ensemble import IsolationForest
from sklearn.ensemble._forest import BaseForest
from sklearn.ensemble._gb import BaseGradientBoosting
from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
from sklearn.ensemble._hist_gradient_boosting.gradient_boosting import BaseHistGradientBoosting
from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
from sklearn.tree._classes import BaseDecisionTree
from sklearn.tree._tree import Tree
from skops.io.exceptions import UntrustedTypesFoundException

from retrainer.errors import (
    ArtifactIntegrityError,
    SpecError,
    TrainingError,
    UntrustedArtifactError,
)

__all__ = ["DEFAULT_TRUSTED_TYPES", "dump_model", "load_model"]

logger = logging.getLogger(__name__)

_TREE = "sklearn.tree._tree.Tree"
_TREE_PREDICTOR = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"

DEFAULT_TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        # Plain builtins skops reports (it trusts int/float/str/bool/list/dict/tuple/set).
        "builtins.NoneType",
        "builtins.ellipsis",
        "builtins.frozenset",
        "builtins.range",
        "numpy.dtype",
        # Sparse matrices (fully format-checked after loading).
        "scipy.sparse._csc.csc_array",
        "scipy.sparse._csc.csc_matrix",
        "scipy.sparse._csr.csr_array",
        "scipy.sparse._csr.csr_matrix",
        # Trees of DecisionTree*/RandomForest*/ExtraTrees*/GradientBoosting*/HistGradient-
        # Boosting*: skops refuses them by default; retrainer checks their nodes instead.
        _TREE,
        _TREE_PREDICTOR,
        # scikit-learn internals of common estimators (plain Python objects).
        "functools.partial",  # HistGradientBoosting's categorical preprocessing
        "sklearn.utils.validation.check_array",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    }
)

# Never trusted, even when the spec asks: these run code, touch files or the network.
_NEVER_TRUSTED_MODULES = frozenset(
    {
        "builtins", "code", "codeop", "ctypes", "dill", "cloudpickle", "http", "importlib",
        "io", "joblib", "marshal", "multiprocessing", "nt", "os", "pathlib", "pickle",
        "_pickle", "posix", "pty", "runpy", "shutil", "socket", "subprocess", "sys",
        "tempfile", "urllib", "webbrowser",
    }
)  # fmt: skip
_SAFE_BUILTINS = frozenset(name for name in DEFAULT_TRUSTED_TYPES if name.startswith("builtins."))
_PATTERN_RE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?:\.\*)?", re.ASCII)
_SKOPS_FAILURES = (
    zipfile.BadZipFile,
    AttributeError,
    EOFError,
    ImportError,
    IndexError,
    KeyError,
    RecursionError,
    TypeError,
    ValueError,
)
_ATOMS = (str, bytes, bytearray, int, float, complex, np.generic, ModuleType, type(None))
# Estimators whose predict passes its validated X straight to the trees they hold.
_TREE_CHAIN = (
    BaseDecisionTree,
    BaseForest,
    BaseGradientBoosting,
    BaseHistGradientBoosting,
    IsolationForest,
)


def dump_model(model: object) -> bytes:
    """Serialize a model with skops (never pickle).

    Args:
        model: A fitted estimator (scikit-learn, or another library skops can persist).

    Returns:
        The skops bytes, ready for :meth:`ArtifactStore.put`.

    Raises:
        TrainingError: skops cannot persist an object inside the model.
    """
    try:
        return bytes(skops.io.dumps(model))
    except (TypeError, ValueError, AttributeError) as exc:
        raise TrainingError(f"the trained model cannot be saved with skops: {exc}") from exc


def load_model(data: bytes, *, extra_trusted: Sequence[str] = ()) -> Any:
    """Load a skops model, refusing any type retrainer does not trust.

    Nothing in the file is imported or instantiated before every type it names is
    trusted. Trust comes only from the caller (the spec's ``train.trusted_types``), never
    from the file.

    Args:
        data: skops bytes, already verified against the registry's sha256.
        extra_trusted: Extra trusted types: exact names as skops reports them
            (``"lightgbm.sklearn.LGBMClassifier"``) or ``"package.*"`` patterns.

    Returns:
        The model.

    Raises:
        SpecError: An ``extra_trusted`` entry is not a dotted name or ``name.*`` pattern.
        UntrustedArtifactError: The bytes are not a skops file (a pickle, joblib...), or
            they hold untrusted types (all are named in the message).
        ArtifactIntegrityError: The skops file is malformed, needs a package that is not
            installed, or holds a tree or sparse matrix whose indices are out of range.
    """
    patterns = _parse_patterns(extra_trusted)
    _require_zip(data)
    found = sorted(_call_skops(skops.io.get_untrusted_types, data=data))
    refused = [name for name in found if not _is_trusted(name, patterns)]
    if refused:
        raise UntrustedArtifactError(_refusal_message(refused))
    try:
        model = _call_skops(skops.io.loads, data, trusted=found)
    except UntrustedTypesFoundException as exc:  # skops disagreed with the listing
        raise UntrustedArtifactError(f"model artifact refused by skops: {exc}") from exc
    _check_structure(model)
    logger.debug("loaded model %s (%d reviewed types)", type(model).__name__, len(found))
    return model


def _parse_patterns(extra_trusted: Sequence[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    """Split ``extra_trusted`` into exact names and ``prefix.`` strings, validating each."""
    if isinstance(extra_trusted, str):
        extra_trusted = [extra_trusted]
    for entry in extra_trusted:
        if not isinstance(entry, str) or not _PATTERN_RE.fullmatch(entry):
            raise SpecError(
                f"train.trusted_types: expected a dotted type name or 'package.*', got {entry!r}"
            )
    exact = frozenset(entry for entry in extra_trusted if not entry.endswith(".*"))
    prefixes = tuple(entry[:-1] for entry in extra_trusted if entry.endswith(".*"))
    return exact, prefixes


def _is_trusted(name: str, patterns: tuple[frozenset[str], tuple[str, ...]]) -> bool:
    if _never_trusted(name):
        return False
    exact, prefixes = patterns
    return name in DEFAULT_TRUSTED_TYPES or name in exact or name.startswith(prefixes)


def _never_trusted(name: str) -> bool:
    return name.split(".", 1)[0] in _NEVER_TRUSTED_MODULES and name not in _SAFE_BUILTINS


def _refusal_message(refused: Sequence[str]) -> str:
    never = [name for name in refused if _never_trusted(name)]
    message = (
        f"model artifact holds types retrainer does not trust: {', '.join(refused)}; "
        "it was not loaded."
    )
    if never:
        return message + f" {', '.join(never)} can run code or touch files and is never trusted."
    return message + (
        " If you created this model and trust these types, list them (or a 'package.*' "
        "pattern) under train.trusted_types in retrainer.yaml."
    )


def _require_zip(data: bytes) -> None:
    if not data.startswith(b"PK"):
        raise UntrustedArtifactError(
            "model artifact is not a skops file; pickle and joblib files are never loaded. "
            "Save models with retrainer.registry.serialization.dump_model."
        )


def _call_skops(func: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a skops reader, translating malformed-file failures."""
    try:
        return func(*args, **kwargs)
    except UntrustedTypesFoundException:
        raise
    except ImportError as exc:
        raise ArtifactIntegrityError(
            f"model artifact needs a package that is not installed: {exc}"
        ) from exc
    except _SKOPS_FAILURES as exc:
        raise ArtifactIntegrityError(
            f"model artifact is not a valid skops file: {type(exc).__name__}: {exc}"
        ) from exc


@dataclass(frozen=True)
class _Context:
    """Where an object sits: the tree estimator above it and its narrowest input width."""

    owner: object | None = None
    n_features: int | None = None


def _check_structure(model: object) -> None:
    """Raise ArtifactIntegrityError if a tree or sparse matrix in ``model`` is malformed."""
    for obj, context in _walk(model):
        if isinstance(obj, Tree):
            _check_tree(obj, context)
        elif isinstance(obj, TreePredictor):
            _check_predictor(obj, context)
        elif scipy.sparse.issparse(obj):
            _check_sparse(obj)


def _walk(model: object) -> Iterator[tuple[object, _Context]]:
    """Every object reachable from ``model`` with its context, iteratively (no recursion)."""
    stack: list[tuple[object, _Context]] = [(model, _Context())]
    seen: set[tuple[int, int, int | None]] = set()
    while stack:
        obj, context = stack.pop()
        key = (id(obj), id(context.owner), context.n_features)
        if key in seen:
            continue
        seen.add(key)
        yield obj, context
        children = _children(obj)
        if children:
            below = _context_below(obj, context)
            stack.extend((child, below) for child in children)


def _children(obj: object) -> list[object]:
    """The objects ``obj`` holds that may hold a tree or a sparse matrix."""
    if _is_atom(obj):
        return []
    if isinstance(obj, dict):
        values: Iterable[object] = obj.values()
    elif isinstance(obj, list | tuple | set | frozenset):
        values = obj
    elif isinstance(obj, np.ndarray):
        values = obj.ravel()
    else:
        state = getattr(obj, "__dict__", None)
        values = state.values() if isinstance(state, dict) else ()
    return [value for value in values if not _is_atom(value)]


def _is_atom(obj: object) -> bool:
    return isinstance(obj, _ATOMS) or (isinstance(obj, np.ndarray) and obj.dtype != object)


def _context_below(obj: object, context: _Context) -> _Context:
    if isinstance(obj, dict | list | tuple | set | frozenset | np.ndarray):
        return context
    if not isinstance(obj, _TREE_CHAIN):
        return _Context()
    n_features = vars(obj).get("n_features_in_")
    if n_features is None:
        return _Context(owner=obj, n_features=context.n_features)
    if not isinstance(n_features, Integral) or isinstance(n_features, bool) or n_features < 0:
        _malformed(type(obj).__name__, f"n_features_in_ is {n_features!r}")
    return _Context(owner=obj, n_features=_narrowest(context.n_features, int(n_features)))


def _narrowest(a: int | None, b: int) -> int:
    return b if a is None else min(a, b)


def _check_tree(tree: Any, context: _Context) -> None:
    count = int(tree.node_count)
    if count < 1:
        _malformed(_TREE, "it has no nodes")
    left, right = np.asarray(tree.children_left), np.asarray(tree.children_right)
    leaf = left == -1
    if np.any(right[leaf] != -1):
        _malformed(_TREE, "a leaf has a right child")
    n_features = _narrowest(context.n_features, int(tree.n_features))
    _check_nodes(_TREE, ~leaf, left, right, np.asarray(tree.feature), n_features)


def _check_predictor(predictor: Any, context: _Context) -> None:
    owner = context.owner
    if not isinstance(owner, BaseHistGradientBoosting) or context.n_features is None:
        _malformed(_TREE_PREDICTOR, "it is not held by a fitted HistGradientBoosting model")
    nodes = predictor.nodes
    if not isinstance(nodes, np.ndarray) or nodes.dtype != PREDICTOR_RECORD_DTYPE or not len(nodes):
        _malformed(_TREE_PREDICTOR, "its node array is empty or of the wrong dtype")
    internal = nodes["is_leaf"] == 0
    feature = nodes["feature_idx"].astype(np.int64)
    _check_nodes(
        _TREE_PREDICTOR,
        internal,
        nodes["left"].astype(np.int64),
        nodes["right"].astype(np.int64),
        feature,
        context.n_features,
    )
    categorical = internal & (nodes["is_categorical"] != 0)
    if np.any(categorical):
        _check_categorical_splits(predictor, owner, feature[categorical], nodes[categorical])


def _check_nodes(
    kind: str,
    internal: np.ndarray[Any, Any],
    left: np.ndarray[Any, Any],
    right: np.ndarray[Any, Any],
    feature: np.ndarray[Any, Any],
    n_features: int,
) -> None:
    """Children of internal nodes come later in the array (no cycles) and exist; features exist."""
    count = len(internal)
    ids = np.arange(count)[internal]
    for children in (left[internal], right[internal]):
        if np.any((children <= ids) | (children >= count)):
            _malformed(kind, f"a child index is out of range (nodes: {count})")
    used = feature[internal]
    if np.any((used < 0) | (used >= n_features)):
        _malformed(kind, f"a feature index is out of range (features: {n_features})")


def _check_categorical_splits(
    predictor: Any, owner: Any, feature: np.ndarray[Any, Any], nodes: np.ndarray[Any, Any]
) -> None:
    is_categorical = np.asarray(getattr(owner._bin_mapper, "is_categorical_", []))
    if np.any(feature >= is_categorical.size) or not np.all(is_categorical[feature]):
        _malformed(_TREE_PREDICTOR, "a categorical split uses a non-categorical feature")
    for name in ("raw_left_cat_bitsets", "binned_left_cat_bitsets"):
        bitsets = np.asarray(getattr(predictor, name))
        if bitsets.ndim != 2 or bitsets.shape[1] < 8:
            _malformed(_TREE_PREDICTOR, f"{name} has shape {bitsets.shape}")
        if np.any(nodes["bitset_idx"] >= bitsets.shape[0]):
            _malformed(_TREE_PREDICTOR, f"a split points past {name}")


def _check_sparse(matrix: Any) -> None:
    check_format = getattr(matrix, "check_format", None)
    if check_format is None:
        _malformed(type(matrix).__name__, "only CSR and CSC sparse formats are loaded")
    try:
        check_format(full_check=True)
    except (ValueError, TypeError, IndexError) as exc:
        _malformed(type(matrix).__name__, str(exc))


def _malformed(kind: str, reason: str) -> NoReturn:
    raise ArtifactIntegrityError(
        f"model artifact holds a malformed {kind}: {reason}; it was not loaded "
        "(a crafted file could crash the process or read stray memory at predict time)"
    )
