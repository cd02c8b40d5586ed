"""The ``retrainer`` command line: parse, open the workspace, call one library function, render."""

import os

# OpenMP threads (scikit-learn's gradient boosting) that wait by spinning starve each
# other and everything else once the machine is busy: the quickstart took 4 minutes
# instead of 27 s under two other busy processes. Waiting threads sleep instead. This
# must be set before OpenMP loads (it reads the variable once), so here, before the
# commands import scikit-learn; the user's own setting wins. Only the CLI's process:
# importing retrainer as a library changes nothing.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from retrainer.cli.app import app, main

__all__ = ["app", "main"]
