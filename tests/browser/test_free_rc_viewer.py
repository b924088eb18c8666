"""``ralign view`` on a free-form Rationale Consistency run with reason types (the scripted GenRM,
extractor and judge of tests/support/free_atomic.py): in headless Chromium an item shows the
GenRM's free text, the extracted reasons with their type badges, the extractor's answer and
each match; an item whose extraction failed says so and is filed under failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from ralign_tasks.cli import main
from ralign_tasks.testing.loopback import LoopbackServer
from tests.support.cdp import chromium
from tests.support.free_atomic import EXTRACTED, GENRM, responder, run_free_atomic
from tests.support.viewer_page import BUTTON_COUNTS

pytestmark = pytest.mark.slow  # Chromium

# Items 2 (no reason found) is skipped; 3 and 4 (no well-formed answer, no answer) failures.
OUTCOMES = ["scored", "scored", "skipped", "failures", "failures", "scored", "scored", "scored"]


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("free_rc_view")
    respond, _ = responder()
    with LoopbackServer(respond) as server:
        run_free_atomic(server.base_url, root / "runs")
    assert main(["view", str(root / "runs"), "--output-dir", str(root / "view")]) == 0
    (path,) = (root / "view").glob("*.html")
    return path


def _open(browser, index: int, query: str):
    card = f"document.querySelector('details.item[data-index=\"{index}\"]')"
    browser.evaluate(f"{card}.querySelector('summary').click()")
    return browser.wait_for(
        f"(() => {{ const body = {card}.querySelector('.item-body'); return body && {query}; }})()"
    )


def test_an_item_shows_the_free_text_the_extracted_reasons_and_their_types(page, tmp_path):
    with chromium(tmp_path / "profile") as browser:
        browser.navigate(page.as_uri())
        counts = browser.evaluate(BUTTON_COUNTS)
        shown = _open(
            browser, 0,
            "{ output: body.querySelector('.genrm .text').textContent,"
            " heading: body.querySelector('.reasons h3').textContent,"
            " reasons: [...body.querySelectorAll('.reason')].map((r) => ["
            "   r.querySelector('.text').textContent,"
            "   r.querySelector('.reason-type') && r.querySelector('.reason-type').dataset.type]),"
            " extractor: body.querySelector('.extract-answer').textContent,"
            " matched: [...body.querySelectorAll('.rationale .match')].length }",
        )  # fmt: skip
        failed = _open(
            browser,
            4,
            "body.querySelector('.rc .notice').textContent + "
            "body.querySelector('.extract-error').textContent",
        )
    assert counts == {"all": 8, "scored": 5, "skipped": 1, "failures": 2}
    assert shown["output"] == GENRM[0]
    assert shown["heading"].startswith("Extracted reasons")
    assert "listed by the extractor" in shown["heading"]
    assert shown["reasons"] == [[EXTRACTED[0][0], "evidence"], [EXTRACTED[0][1], "criterion"]]
    assert "<REASONS_START>" in shown["extractor"]
    assert shown["matched"] == 4  # every human rationale shows its match (or none)
    assert "extractor gave no answer" in failed and "400" in failed
