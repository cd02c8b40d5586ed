"""Service: the prediction server (``retrainer serve``).

:func:`create_app` builds a FastAPI app serving the workspace's champion; the
:class:`VersionSelector` protocol is the hook that routes a request to another loaded
version (canary rollouts). See docs/serving.md.
"""

from retrainer.service.app import create_app
from retrainer.service.pool import ChampionSelector, ModelPool, ServedModel, VersionSelector
from retrainer.service.schema import FeatureSchema, InputProblem
from retrainer.service.state import ServiceConfig, ServiceState

__all__ = [
    "ChampionSelector",
    "FeatureSchema",
    "InputProblem",
    "ModelPool",
    "ServedModel",
    "ServiceConfig",
    "ServiceState",
    "VersionSelector",
    "create_app",
]
