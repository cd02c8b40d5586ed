"""The ``retrainer`` command line: parse, open the workspace, call one library function, render."""

from retrainer.cli.app import app, main

__all__ = ["app", "main"]
