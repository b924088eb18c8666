"""``ralign view`` on label-benchmark runs (JudgeBench, RM-Bench, RewardBench 2 on the bundled
samples, a loopback GenRM that likes long answers): one page per run, every item filed under
one outcome, and in headless Chromium an item's games with what each showed and its verdict."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from ralign_tasks.cli import main
from ralign_tasks.report.runs import load_runs
from ralign_tasks.report.viewer import view_items, write_views
from ralign_tasks.testing.loopback import LoopbackServer
from tests.support.cdp import chromium
from tests.support.label_judges import length_everything
from tests.support.viewer_page import BUTTON_COUNTS, SHOWN, VISIBLE_OUTCOMES

pytestmark = pytest.mark.slow  # Chromium

TASKS = ("judgebench", "rmbench", "rb2")
_DATA = re.compile(r'<script type="application/json" id="ralign-data">(.*?)</script>', re.DOTALL)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("label_runs")
    with LoopbackServer(length_everything) as server:
        for task in TASKS:
            code = main(["run", task, "--sample", "--genrm-model", "long", "--genrm-base-url",
                         server.base_url, "--output-dir", str(out)])  # fmt: skip
            assert code == 0
    return out


def test_one_page_per_label_run_with_every_item_and_its_games(runs, tmp_path):
    assert main(["view", str(runs), "--output-dir", str(tmp_path)]) == 0
    results, _ = load_runs([runs])
    for result in results:
        page = tmp_path / f"long__{result.task}.html"
        (text,) = _DATA.findall(page.read_text(encoding="utf-8"))
        data = json.loads(text)
        assert data["items"] == json.loads(json.dumps(list(view_items(result))))
        assert len(data["items"]) == result.n and data["kind"] == "games"
        for shown, item in zip(data["items"], result.full_items(), strict=True):
            assert shown["kind"] == "games" and shown["id"] == item.id
            assert [g["output"] for g in shown["games"]] == [
                g["output"] for g in item.genrm["games"]
            ]
        # Every item is in one filter; "scored as a set" only where there are Ties rows.
        keys = [o["key"] for o in data["outcomes"]]
        assert Counter(i["outcome"] for i in data["items"]).keys() <= set(keys)
        assert ("set" in keys) == (result.task == "ralign_rb2")


def test_an_opened_label_item_shows_its_games_in_chromium(runs, tmp_path, tmp_path_factory):
    assert main(["view", str(runs), "--output-dir", str(tmp_path)]) == 0
    results, _ = load_runs([runs])
    result = next(r for r in results if r.task == "ralign_rmbench")
    counts = Counter(item["outcome"] for item in view_items(result))
    with chromium(tmp_path_factory.mktemp("profile")) as browser:
        browser.navigate((tmp_path / "long__ralign_rmbench.html").as_uri())
        assert browser.evaluate(SHOWN) == result.n
        buttons = browser.evaluate(BUTTON_COUNTS)
        assert buttons["all"] == result.n
        assert {key: buttons[key] for key in counts} == dict(counts)
        key = next(iter(counts))
        browser.evaluate(f"document.querySelector('#outcome-filter button[value={key}]').click()")
        assert browser.evaluate(VISIBLE_OUTCOMES) == [key] * counts[key]
        index = browser.evaluate(
            "(() => { const card = [...document.querySelectorAll('details.item')]"
            ".find((c) => c.checkVisibility()); card.querySelector('summary').click();"
            " return +card.dataset.index; })()"
        )
        card = f"document.querySelector('details.item[data-index=\"{index}\"]')"
        games = browser.wait_for(
            f"(() => {{ const g = {card}.querySelectorAll('.game'); return g.length && "
            "[...g].map((s) => [s.querySelector('h3').textContent, "
            "s.querySelector('.text').textContent]); })()"
        )
        item = list(result.full_items())[index]
        assert len(games) == 9
        for (heading, output), game in zip(games, item.genrm["games"], strict=True):
            assert f"chosen_slot {game['shown']['chosen_slot']}" in heading
            assert output == game["output"]


def test_a_label_run_split_into_chunks_shows_an_items_games_in_chromium(runs, tmp_path):
    results, _ = load_runs([runs])
    result = next(r for r in results if r.task == "ralign_rmbench")
    (page,) = write_views([result], tmp_path, [], inline_bytes=0, chunk_items=2)
    assert len(list(tmp_path.glob("*_items/chunk-*.js"))) == -(-result.n // 2)
    index = result.n - 1  # in the last chunk
    card = f"document.querySelector('details.item[data-index=\"{index}\"]')"
    with chromium(tmp_path / "profile") as browser:
        browser.navigate(page.as_uri())
        assert browser.evaluate(SHOWN) == result.n
        browser.evaluate(f"{card}.querySelector('summary').click()")
        outputs = browser.wait_for(
            f"(() => {{ const g = {card}.querySelectorAll('.game .text');"
            " return g.length && [...g].map((t) => t.textContent); })()"
        )
    item = list(result.full_items())[index]
    assert outputs == [game["output"] for game in item.genrm["games"]]
