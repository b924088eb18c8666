"""``ralign view`` of a swap run: each item's two orders side by side and a filter by whether
their verdicts agree, in headless Chromium."""

from __future__ import annotations

import pytest

from ralign_tasks.cli import main
from ralign_tasks.data import sample_data_dir
from ralign_tasks.protocols import load_task
from ralign_tasks.report.runs import load_runs
from ralign_tasks.testing.loopback import LoopbackServer, is_metajudge_prompt, prompt_of
from tests.support.cdp import chromium
from tests.support.label_judges import pair_answers
from tests.support.scripted import meta_answer
from tests.support.viewer_page import SHOWN

pytestmark = pytest.mark.slow  # Chromium

RECORDS = load_task("helpsteer3", sample_data_dir()).records


def half_robust(body: dict) -> str:
    """The better answer in both orders on even-numbered items; always the first answer on
    the others (position-inconsistent there)."""
    prompt = prompt_of(body)
    index, record = next((i, r) for i, r in enumerate(RECORDS) if r.prompt in prompt)
    if is_metajudge_prompt(body):
        return meta_answer("Correct")
    if index % 2:
        return "\\boxed{A}"
    first, _ = pair_answers(prompt)
    better = record.response_a if record.label == "A" else record.response_b
    return "\\boxed{A}" if first == better else "\\boxed{B}"


def test_a_swap_runs_orders_side_by_side_and_the_consistency_filter(tmp_path):
    with LoopbackServer(half_robust) as server:
        assert main(["run", "helpsteer3", "--sample", "--swap", "--genrm-model", "g",
                     "--genrm-base-url", server.base_url, "--metajudge-model", "j",
                     "--metajudge-base-url", server.base_url,
                     "--output-dir", str(tmp_path / "runs")]) == 0  # fmt: skip
    assert main(["view", str(tmp_path / "runs"), "--output-dir", str(tmp_path / "view")]) == 0
    (result,) = load_runs([tmp_path / "runs"])[0]
    (page,) = (tmp_path / "view").glob("*.html")
    with chromium(tmp_path / "profile") as browser:
        browser.navigate(page.as_uri())
        assert browser.evaluate("!document.getElementById('order-field').hidden")
        browser.evaluate(
            "(() => { const s = document.getElementById('order-filter');"
            " s.value = 'inconsistent'; s.dispatchEvent(new Event('change')); })()"
        )
        assert browser.evaluate(SHOWN) == len(RECORDS) // 2
        assert browser.evaluate("location.hash") == "#order=inconsistent"
        index = browser.evaluate(
            "(() => { const card = [...document.querySelectorAll('details.item')]"
            ".find((c) => c.checkVisibility()); card.querySelector('summary').click();"
            " return +card.dataset.index; })()"
        )
        assert index % 2 == 1
        card = f"document.querySelector('details.item[data-index=\"{index}\"]')"
        second = browser.wait_for(
            f"(() => {{ const t = {card}.querySelector('.order-2 .text');"
            " return t && t.checkVisibility() && t.textContent; })()"
        )
        item = list(result.full_items())[index]
        assert second == item.genrm["swapped"]["output"] == "\\boxed{A}"
        tags = browser.evaluate(f"{card}.querySelector('.order-2 h3').textContent")
        assert "position-inconsistent" in tags
