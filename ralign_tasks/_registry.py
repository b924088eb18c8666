"""Inspect's entry point: importing this registers the R-Align tasks and scorers."""

from ralign_tasks.inspect_tasks import (
    ralign_helpsteer3,
    ralign_helpsteer3_atomic,
    ralign_ppe,
    ralign_rewardbench2,
)
from ralign_tasks.scorers.inspect_rc_scorer import ralign_rc
from ralign_tasks.scorers.inspect_scorer import ralign_fidelity

__all__ = [
    "ralign_fidelity",
    "ralign_helpsteer3",
    "ralign_helpsteer3_atomic",
    "ralign_ppe",
    "ralign_rc",
    "ralign_rewardbench2",
]
