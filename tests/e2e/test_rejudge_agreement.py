"""``ralign rejudge`` (the judge step again, no GenRM call) and ``ralign report --agreement``
on the bundled HelpSteer3 sample: three GenRMs judged by three scripted meta-judges, every
number against hand-computed values."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from ralign_tasks.cli.main import main
from ralign_tasks.data import sample_data_dir
from ralign_tasks.protocols import load_task
from ralign_tasks.report.agreement import agreement, load_raters
from ralign_tasks.scorers.stats import fleiss_kappa
from ralign_tasks.testing.loopback import LoopbackServer, is_metajudge_prompt, prompt_of
from tests.support.label_judges import pair_answers
from tests.support.scripted import meta_answer

RECORDS = load_task("helpsteer3", sample_data_dir()).records
# GenRM -> which answer it picks; meta-judge -> which items' rationales it finds Correct.
GENRMS = {"g-first": lambda r: "A", "g-right": lambda r: r.label, "g-second": lambda r: "B"}
JUDGES = {
    "judge-a": lambda index: True,
    "judge-b": lambda index: index % 2 == 0,
    "judge-c": lambda index: index < 4,
}


def responder(body: dict) -> str:
    prompt = prompt_of(body)
    index, record = next((i, r) for i, r in enumerate(RECORDS) if r.prompt in prompt)
    if is_metajudge_prompt(body):
        return meta_answer("Correct" if JUDGES[body["model"]](index) else "Incorrect")
    pick = GENRMS[body["model"]](record)
    first, _ = pair_answers(prompt)
    assert first == record.response_a
    return f"\\boxed{{{pick}}}"


def graded(judge: str) -> list[int]:
    """The hand-computed grades of every label-correct (GenRM, item), GenRMs by name."""
    return [
        int(JUDGES[judge](index))
        for genrm in sorted(GENRMS)
        for index, record in enumerate(RECORDS)
        if GENRMS[genrm](record) == record.label
    ]


def f_score(genrm: str, judge: str) -> float:
    right = [i for i, r in enumerate(RECORDS) if GENRMS[genrm](r) == r.label]
    return sum(JUDGES[judge](i) for i in right) / len(RECORDS)


def cohen(first: list[int], second: list[int]) -> float:
    n = len(first)
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    p1, p2 = sum(first) / n, sum(second) / n
    expected = p1 * p2 + (1 - p1) * (1 - p2)
    return (observed - expected) / (1 - expected)


def kendall(first: list[float], second: list[float]) -> float:
    """Kendall's tau-b by counting pairs."""
    concordant = discordant = ties_a = ties_b = 0
    for i, j in itertools.combinations(range(len(first)), 2):
        a, b = first[i] - first[j], second[i] - second[j]
        if a == 0 and b == 0:
            continue
        if a == 0:
            ties_a += 1
        elif b == 0:
            ties_b += 1
        elif (a > 0) == (b > 0):
            concordant += 1
        else:
            discordant += 1
    total = concordant + discordant
    return (concordant - discordant) / ((total + ties_a) * (total + ties_b)) ** 0.5


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("agreement")
    with LoopbackServer(responder) as server:
        for genrm in GENRMS:
            assert main(["run", "helpsteer3", "--sample", "--genrm-model", genrm,
                         "--genrm-base-url", server.base_url, "--metajudge-model", "judge-a",
                         "--metajudge-base-url", server.base_url,
                         "--output-dir", str(root / "judge-a" / genrm)]) == 0  # fmt: skip
        before = len(server.requests)
        for judge in ("judge-b", "judge-c"):
            assert main(["rejudge", str(root / "judge-a"), "--metajudge-model", judge,
                         "--metajudge-base-url", server.base_url,
                         "--output-dir", str(root / judge)]) == 0  # fmt: skip
        rejudged = server.requests[before:]
    # Re-judging asks the meta-judge only, each distinct request once per judge: the GenRMs'
    # outputs are the bare verdict, so one item's rationale is the same for every GenRM that
    # got it right (the cache answers the repeats).
    assert all(is_metajudge_prompt(body) for body in rejudged)
    assert len(rejudged) == 2 * len(RECORDS)
    return root


def test_rejudged_runs_have_the_new_judges_numbers(runs):
    for judge in ("judge-b", "judge-c"):
        for genrm in GENRMS:
            (results,) = (runs / judge).glob(f"{genrm}*/results.json")
            data = json.loads(results.read_text())
            assert data["genrm"] == genrm and data["settings"]["meta_judge_model"] == judge
            assert data["metrics"]["overall"]["f_score"] == pytest.approx(f_score(genrm, judge))
            assert "judge-a" in data["settings"]["rejudged_from"]


def test_two_meta_judges_cohens_kappa_confusion_and_tau(runs):
    warnings: list[str] = []
    raters = load_raters([str(runs / "judge-b"), str(runs / "judge-c")], warnings)
    assert [r.name for r in raters] == ["judge-b", "judge-c"]
    (entry,) = agreement(raters, draws=200)
    b, c = graded("judge-b"), graded("judge-c")
    assert entry.items == len(b) == 16 and entry.ungraded == 0
    assert entry.raw == pytest.approx(sum(x == y for x, y in zip(b, c, strict=True)) / 16)
    assert entry.kappa == pytest.approx(cohen(b, c))
    assert entry.kappa_ci[0] <= entry.kappa <= entry.kappa_ci[1]
    pairs = list(zip(b, c, strict=True))
    assert entry.confusion == [[pairs.count((1, 1)), pairs.count((1, 0))],
                               [pairs.count((0, 1)), pairs.count((0, 0))]]  # fmt: skip
    names = sorted(GENRMS)
    expected_tau = kendall([f_score(g, "judge-b") for g in names],
                           [f_score(g, "judge-c") for g in names])  # fmt: skip
    assert entry.tau["judge-b vs judge-c"] == pytest.approx(expected_tau)


def test_three_meta_judges_fleiss_kappa_and_the_printed_report(runs, capsys, tmp_path):
    paths = [str(runs / judge) for judge in JUDGES]
    raters = load_raters(paths, [])
    (entry,) = agreement(raters, draws=200)
    grades = [graded(judge) for judge in JUDGES]
    assert entry.kind == "Fleiss"
    # Fleiss' kappa by hand: per item agreement and the grade shares.
    n, k = len(grades[0]), len(grades)
    per_item = []
    for column in zip(*grades, strict=True):
        yes = sum(column)
        per_item.append((yes * (yes - 1) + (k - yes) * (k - yes - 1)) / (k * (k - 1)))
    share = sum(map(sum, grades)) / (n * k)
    expected = share**2 + (1 - share) ** 2
    assert entry.kappa == pytest.approx((sum(per_item) / n - expected) / (1 - expected))
    import numpy as np

    assert entry.kappa == pytest.approx(fleiss_kappa(np.array(grades).T))
    assert len(entry.tau) == 3
    code = main(["report", "--agreement", *paths, "--plots", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "Meta-judge agreement: judge-a / judge-b / judge-c" in out
    assert "Fleiss" in out and "judge-b vs judge-c" in out
    assert (tmp_path / "agreement_f_score.png").stat().st_size > 10_000


def test_agreement_needs_two_runs(capsys):
    assert main(["report", "--agreement", "one"]) == 2
    assert "--agreement needs two or more runs" in capsys.readouterr().err


def test_an_inspect_log_is_rejudged_without_a_genrm_call(tmp_path, monkeypatch):
    from inspect_ai import eval as inspect_eval

    from ralign_tasks.inspect_adapter.tasks import TASK_FUNCTIONS

    with LoopbackServer(responder) as server:
        monkeypatch.setenv("LOOP_BASE_URL", server.base_url)
        monkeypatch.setenv("LOOP_API_KEY", "unused")
        monkeypatch.chdir(tmp_path)
        (log,) = inspect_eval(
            TASK_FUNCTIONS["ralign_helpsteer3"](sample=True),
            model="openai-api/loop/g-right",
            model_roles={"meta_judge": "openai-api/loop/judge-a"},
            log_dir=str(tmp_path / "logs"),
            display="none",
        )
        assert log.status == "success"
        before = len(server.requests)
        assert main(["rejudge", str(tmp_path / "logs"), "--metajudge-model", "judge-c",
                     "--metajudge-base-url", server.base_url,
                     "--output-dir", str(tmp_path / "out")]) == 0  # fmt: skip
        rejudged = server.requests[before:]
    assert rejudged and all(is_metajudge_prompt(body) for body in rejudged)
    (results,) = (tmp_path / "out").glob("*/results.json")
    data = json.loads(results.read_text())
    assert data["metrics"]["overall"]["f_score"] == pytest.approx(f_score("g-right", "judge-c"))


def test_krippendorff_alpha_beside_kappa_equals_inspects_metric(runs):
    """alpha of the same grades as kappa, and Inspect's own ``krippendorff_alpha`` metric gives
    the same value on them."""
    from inspect_ai.scorer import SampleScore, Score, krippendorff_alpha

    for judges in (list(JUDGES)[1:], list(JUDGES)):
        raters = load_raters([str(runs / judge) for judge in judges], [])
        (entry,) = agreement(raters, draws=200)
        rows = zip(*(graded(judge) for judge in judges), strict=True)
        scores = [SampleScore(score=Score(value=list(row))) for row in rows]
        assert entry.alpha == pytest.approx(krippendorff_alpha()(scores))
        low, high = entry.alpha_ci
        assert low <= entry.alpha <= high
