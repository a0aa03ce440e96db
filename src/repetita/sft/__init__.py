"""SFT repetition tools: response-token accuracy, a stop rule on it, fixed-update-budget grids.

``TokenAccuracyStopping`` (a ``transformers.TrainerCallback``) is resolved lazily so that importing
this package never imports transformers.
"""

from __future__ import annotations

from repetita.sft.accuracy import BatchAccuracy, WindowedAccuracy, token_accuracy
from repetita.sft.plan import GridPlan, fixed_budget_grid, summary_table
from repetita.sft.stopping import StopConfig, StopDecision, StopRule, TokenAccuracyHook

__all__ = [
    "BatchAccuracy",
    "GridPlan",
    "StopConfig",
    "StopDecision",
    "StopRule",
    "TokenAccuracyHook",
    "TokenAccuracyStopping",
    "WindowedAccuracy",
    "fixed_budget_grid",
    "summary_table",
    "token_accuracy",
]


def __getattr__(name: str):
    if name == "TokenAccuracyStopping":
        from repetita.sft.hf import TokenAccuracyStopping

        return TokenAccuracyStopping
    raise AttributeError(f"module 'repetita.sft' has no attribute {name!r}")
