"""One error tree for retrainer, with stable codes.

Every error a user can meet derives from :class:`RetrainerError` and carries a stable
``code`` (for scripts and logs) and an ``exit_code`` (the CLI's process exit status).
Only the CLI maps errors to exit codes and only the service maps them to HTTP status;
library code raises these and translates foreign exceptions at its boundary with
``raise ... from exc``.

Exit codes (documented in the README):

====  ===========================================================
0     success
1     unexpected internal error (a bug: please report it)
2     bad input: spec, arguments, data that breaks the contract
3     not found: model, version, alias, run
4     conflict: the state changed under you (retry), lease held
5     integrity: artifact hash mismatch, untrusted artifact type
6     refused by policy: gates failed, promotion not allowed
7     environment: the store is unreachable or the disk is full
====  ===========================================================
"""

from __future__ import annotations

__all__ = [
    "ArtifactIntegrityError",
    "AuthError",
    "ConflictError",
    "ContractViolation",
    "DataSourceError",
    "DiskFullError",
    "EvaluationError",
    "ExecutorError",
    "ForbiddenError",
    "LeakageError",
    "LeaseHeldError",
    "NotFoundError",
    "PathEscapeError",
    "PolicyError",
    "RetrainerError",
    "SpecError",
    "StoreError",
    "TrainingError",
    "UntrustedArtifactError",
]


class RetrainerError(Exception):
    """Base class of every retrainer error.

    Attributes:
        code: A stable, upper-case identifier (``SPEC_INVALID``...), safe to match on.
        exit_code: The exit status the CLI uses for this error.
    """

    code: str = "RETRAINER_ERROR"
    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class SpecError(RetrainerError):
    """The spec (``retrainer.yaml``) is malformed; the message names file and key."""

    code = "SPEC_INVALID"
    exit_code = 2


class DataSourceError(RetrainerError):
    """A data source cannot be read (missing folder, unreadable file, bad query)."""

    code = "DATA_SOURCE"
    exit_code = 2


class ContractViolation(RetrainerError):
    """A batch breaks the data contract; it is quarantined, never dropped."""

    code = "CONTRACT_VIOLATION"
    exit_code = 2


class PathEscapeError(RetrainerError):
    """A user-supplied path or key would leave the root it must stay under."""

    code = "PATH_ESCAPE"
    exit_code = 2


class TrainingError(RetrainerError):
    """The user's estimator or training function failed or returned no model."""

    code = "TRAINING_FAILED"
    exit_code = 2


class LeakageError(TrainingError):
    """Training refused: the data leaks the target (a feature predicts it almost
    perfectly, a feature is timestamped after its label) or holdout rows are in training."""

    code = "LEAKAGE_SUSPECTED"


class EvaluationError(RetrainerError):
    """A candidate cannot be judged as asked (a holdout too small for the confidence)."""

    code = "EVALUATION"
    exit_code = 2


class NotFoundError(RetrainerError):
    """A model, version, alias or run does not exist."""

    code = "NOT_FOUND"
    exit_code = 3


class ConflictError(RetrainerError):
    """The state changed under the caller (compare-and-swap lost); nothing was changed."""

    code = "CONFLICT"
    exit_code = 4


class LeaseHeldError(ConflictError):
    """Another live process holds the lease (one cycle per model at a time)."""

    code = "LEASE_HELD"


class StoreError(RetrainerError):
    """The metadata store failed (unreachable, locked past the retry budget)."""

    code = "STORE"
    exit_code = 7


class ExecutorError(RetrainerError):
    """The executor's cluster is unreachable, or a task on it failed outside user code."""

    code = "EXECUTOR"
    exit_code = 7


class DiskFullError(RetrainerError):
    """No space left while writing an artifact, a snapshot or the store."""

    code = "DISK_FULL"
    exit_code = 7


class ArtifactIntegrityError(RetrainerError):
    """An artifact's bytes do not match the sha256 recorded in the registry."""

    code = "ARTIFACT_INTEGRITY"
    exit_code = 5


class UntrustedArtifactError(ArtifactIntegrityError):
    """An artifact holds types outside retrainer's trusted list; it was not loaded."""

    code = "ARTIFACT_UNTRUSTED"


class PolicyError(RetrainerError):
    """Refused by policy: the gates did not pass, or the version is not promotable."""

    code = "POLICY"
    exit_code = 6


class AuthError(PolicyError):
    """No credentials, or credentials that are unknown, expired or revoked (HTTP 401)."""

    code = "UNAUTHENTICATED"


class ForbiddenError(PolicyError):
    """Known caller, not allowed: wrong role, or separation of duties (HTTP 403)."""

    code = "FORBIDDEN"
