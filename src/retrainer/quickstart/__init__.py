"""Quickstart: ``retrainer init`` templates and the NOAA rainfall demo with its report."""

from retrainer.quickstart.rainfall import CHANGE_ROW, load_rainfall
from retrainer.quickstart.workspace_init import EXAMPLES, init_workspace, write_batch

__all__ = ["CHANGE_ROW", "EXAMPLES", "init_workspace", "load_rainfall", "write_batch"]
