"""Inspect's entry point: importing this registers the R-Align tasks and scorer."""

from ralign_tasks.inspect_tasks import ralign_helpsteer3, ralign_ppe, ralign_rewardbench2
from ralign_tasks.scorers.inspect_scorer import ralign_fidelity

__all__ = ["ralign_fidelity", "ralign_helpsteer3", "ralign_ppe", "ralign_rewardbench2"]
