"""Backtesting retraining policies on history: ``retrainer backtest``.

:func:`run_backtest` replays a time-ordered history batch by batch through the same
monitor, trigger, training and gate code production runs, once per policy, and
returns what each policy's models scored on every batch as it arrived, and what it
cost. See docs/backtesting.md.
"""

from retrainer.backtest.history import BatchBy, load_history, parse_batch_by, split_batches
from retrainer.backtest.policies import Policy, parse_policies
from retrainer.backtest.report_html import render_html, write_html
from retrainer.backtest.runner import BacktestSettings, run_backtest

__all__ = [
    "BacktestSettings",
    "BatchBy",
    "Policy",
    "load_history",
    "parse_batch_by",
    "parse_policies",
    "render_html",
    "run_backtest",
    "split_batches",
    "write_html",
]
