"""The R-Align benchmark registry: short names, task names and data file names."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Benchmark:
    """One R-Align benchmark file and the task that evaluates it."""

    name: str
    task: str
    file_stem: str
    title: str

    @property
    def file_name(self) -> str:
        return f"{self.file_stem}.jsonl"


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark("helpsteer3", "ralign_helpsteer3", "helpsteer3_aug", "HelpSteer3"),
        Benchmark("reward_bench2", "ralign_rewardbench2", "reward_bench2_aug", "RewardBench 2"),
        Benchmark("ppe_human_preference_v1", "ralign_ppe", "ppe_human_preference_v1_aug", "PPE"),
    )
}


def get_benchmark(name: str) -> Benchmark:
    """Look a benchmark up by short name (``helpsteer3``) or task name (``ralign_helpsteer3``)."""
    for benchmark in BENCHMARKS.values():
        if name in (benchmark.name, benchmark.task):
            return benchmark
    known = ", ".join(f"{b.name} ({b.task})" for b in BENCHMARKS.values())
    raise KeyError(f"unknown benchmark {name!r}; known: {known}")
