"""``ralign view`` on a Rationale Consistency run (the scripted HelpSteer3-Atomic GenRM and
MetaJudge of tests/support/atomic.py): one page, every item filed under scored, skipped or
failures, and in headless Chromium an item's human rationales beside the GenRM's reasons,
which reason the MetaJudge matched to each and its score, and the item's RC values."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from ralign_tasks.cli import main
from ralign_tasks.report.runs import load_runs
from ralign_tasks.report.viewer import view_items
from ralign_tasks.testing.loopback import LoopbackServer
from tests.support.atomic import PICKS, RECORDS, responder, run_atomic
from tests.support.cdp import chromium
from tests.support.viewer_page import BUTTON_COUNTS, SHOWN, VISIBLE_OUTCOMES

pytestmark = pytest.mark.slow  # Chromium

PAGE = "g__ralign_helpsteer3_atomic.html"
# Items 0, 1, 5, 6, 7 are scored, 2 and 3 skipped (no reason, more than ten), 4's MetaJudge
# answer is never well-formed.
OUTCOMES = ["scored", "scored", "skipped", "skipped", "failures", "scored", "scored", "scored"]
_DATA = re.compile(r'<script type="application/json" id="ralign-data">(.*?)</script>', re.DOTALL)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("rc_view")
    respond, _ = responder()
    with LoopbackServer(respond) as server:
        run_atomic(server.base_url, "g", "j", root / "runs")
    assert main(["view", str(root / "runs"), "--output-dir", str(root / "view")]) == 0
    return root / "runs", root / "view" / PAGE


def test_the_page_has_every_item_with_its_rationales_and_matches(page):
    runs, path = page
    (result,) = load_runs([runs])[0]
    (text,) = _DATA.findall(path.read_text(encoding="utf-8"))
    data = json.loads(text)
    assert data["kind"] == "rationale" and data["items"] == list(view_items(result))
    assert [o["key"] for o in data["outcomes"]] == ["scored", "skipped", "failures"]
    assert [item["outcome"] for item in data["items"]] == OUTCOMES
    first = data["items"][0]
    assert [r["text"] for r in first["rationales"]] == list(RECORDS[0].checklist)
    picks = PICKS[0] + [(0, 0.0)] * (len(RECORDS[0].checklist) - len(PICKS[0]))
    assert [(r["reason"], r["score"]) for r in first["rationales"]] == picks
    assert first["reasons"] == ["first point", "second point"]
    assert first["scores"][0] == {"name": "RC", "value": pytest.approx(1.75 / 4)}


def test_an_opened_rc_item_shows_each_match_in_chromium(page, tmp_path):
    _, path = page
    counts = Counter(OUTCOMES)
    with chromium(tmp_path / "profile") as browser:
        browser.navigate(path.as_uri())
        assert browser.evaluate(SHOWN) == len(OUTCOMES)
        assert browser.evaluate(BUTTON_COUNTS) == {"all": len(OUTCOMES), **counts}
        browser.evaluate("document.querySelector('#outcome-filter button[value=skipped]').click()")
        assert browser.evaluate(VISIBLE_OUTCOMES) == ["skipped"] * counts["skipped"]
        browser.evaluate("document.querySelector('#outcome-filter button[value=all]').click()")
        card = "document.querySelector('details.item[data-index=\"0\"]')"
        browser.evaluate(f"{card}.querySelector('summary').click()")
        shown = browser.wait_for(
            f"(() => {{ const body = {card}.querySelector('.item-body'); return body && {{"
            " rationales: [...body.querySelectorAll('.rationale')].map((r) => ["
            "   r.querySelector('.text').textContent,"
            "   r.querySelector('.match') && +r.querySelector('.match').dataset.reason,"
            "   r.querySelector('.match') && +r.querySelector('.match').dataset.score]),"
            " reasons: [...body.querySelectorAll('.reason')].map((r) => ["
            "   r.querySelector('.text').textContent, r.querySelector('.head').textContent]),"
            " values: body.querySelector('.rc-values').textContent,"
            " answer: body.querySelector('.judge-answer').textContent }; })()"
        )
        skipped = "document.querySelector('details.item[data-index=\"2\"]')"
        browser.evaluate(f"{skipped}.querySelector('summary').click()")
        notice = browser.wait_for(
            f"(() => {{ const n = {skipped}.querySelector('.rc .notice');"
            " return n && n.textContent; })()"
        )
    picks = PICKS[0] + [(0, 0.0)] * (len(RECORDS[0].checklist) - len(PICKS[0]))
    assert shown["rationales"] == [
        [text, s, score] for text, (s, score) in zip(RECORDS[0].checklist, picks, strict=True)
    ]
    assert shown["reasons"] == [["first point", "S1matched by R1, R2"],
                                ["second point", "S2matched by R3"]]  # fmt: skip
    assert "RC 0.438" in shown["values"] and "<RESULT_START>" in shown["answer"]
    assert "listed no reasons" in notice
