"""``ralign view`` on an R-Align run with reason types (tests/support/reason_types.py): in
headless Chromium an item shows the extracted reasons of its rationale with a type badge each,
and an item whose typing failed says so."""

from __future__ import annotations

import pytest

from ralign_tasks.cli import main
from ralign_tasks.testing.loopback import LoopbackServer
from tests.support.cdp import chromium
from tests.support.reason_types import SCRIPT, responder

pytestmark = pytest.mark.slow  # Chromium


def test_an_item_shows_its_reasons_with_their_types(tmp_path):
    respond, _ = responder()
    with LoopbackServer(respond) as server:
        code = main([
            "run", "helpsteer3", "--sample", "--genrm-model", "genrm",
            "--genrm-base-url", server.base_url, "--metajudge-model", "judge",
            "--metajudge-base-url", server.base_url, "--extractor-model", "extractor",
            "--reason-types", "--output-dir", str(tmp_path / "runs"),
        ])  # fmt: skip
    assert code == 0
    assert main(["view", str(tmp_path / "runs"), "--output-dir", str(tmp_path / "view")]) == 0
    (page,) = (tmp_path / "view").glob("*.html")
    reasons = (
        "[...body.querySelectorAll('.reasons .reason')].map((r) => ["
        " r.querySelector('.text').textContent,"
        " r.querySelector('.reason-type') && r.querySelector('.reason-type').dataset.type])"
    )
    with chromium(tmp_path / "profile") as browser:
        browser.navigate(page.as_uri())
        shown = {}
        for index in (0, 7):
            card = f"document.querySelector('details.item[data-index=\"{index}\"]')"
            browser.evaluate(f"{card}.querySelector('summary').click()")
            shown[index] = browser.wait_for(
                f"(() => {{ const body = {card}.querySelector('.item-body'); return body && {{"
                f" reasons: {reasons}, heading: body.querySelector('.reasons h3').textContent"
                " }; })()"
            )
    assert shown[0]["reasons"] == [[SCRIPT[0][2][0], "evidence"], [SCRIPT[0][2][1], "generic"]]
    assert shown[0]["heading"].startswith("Extracted reasons")
    assert shown[7]["reasons"] == [["A is better.", None]]
    assert "types: no answer" in shown[7]["heading"]
