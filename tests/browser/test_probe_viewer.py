"""``ralign view`` on a probe run (the verbosity-biased GenRM of tests/support/probes.py under
the verbosity probe): in headless Chromium an item shows the changed answer beside the
original, the GenRM's probed verdict (flipped) and whether its rationale cites the cue."""

from __future__ import annotations

import json

import pytest

from ralign_tasks.cli import main
from ralign_tasks.testing.loopback import LoopbackServer
from tests.support.cdp import chromium
from tests.support.probes import responder

pytestmark = pytest.mark.slow  # Chromium


def test_a_probed_item_shows_both_answers_and_what_moved(tmp_path):
    with LoopbackServer(responder()) as server:
        assert main([
            "run", "helpsteer3", "--sample", "--genrm-model", "verbose", "--genrm-base-url",
            server.base_url, "--metajudge-model", "judge", "--metajudge-base-url",
            server.base_url, "--probe", "verbosity", "--output-dir", str(tmp_path / "runs"),
        ]) == 0  # fmt: skip
    assert main(["view", str(tmp_path / "runs"), "--output-dir", str(tmp_path / "view")]) == 0
    (page,) = (tmp_path / "view").glob("*.html")
    samples = tmp_path / "runs" / "verbose" / "helpsteer3_verbosity" / "samples.jsonl"
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    probed = [row["item"]["genrm"]["probed"] for row in rows]
    card = "document.querySelector('details.item[data-index=\"{}\"]')"
    query = (
        "(() => {{ const body = {card}.querySelector('.item-body'); return body && {{"
        " original: body.querySelector('.probe-original .text').textContent,"
        " shown: body.querySelector('.probe-shown .text').textContent,"
        " tags: [...body.querySelectorAll('.probe-genrm h3 .tag')].map((t) => t.textContent),"
        " cited: body.querySelector('.probe-genrm .cue') &&"
        "   body.querySelector('.probe-genrm .cue').dataset.cited }}; }})()"
    )
    with chromium(tmp_path / "profile") as browser:
        browser.navigate(page.as_uri())
        shown = {}
        for index in (0, 1):  # item 1 flips under the probe; item 2 stays right
            browser.evaluate(f"{card.format(index)}.querySelector('summary').click()")
            shown[index] = browser.wait_for(query.format(card=card.format(index)))
    for index in (0, 1):
        changed = probed[index]["changed"]
        record = rows[index]["doc"]
        assert shown[index]["original"] == record[f"response_{changed.lower()}"]
        assert shown[index]["shown"] == probed[index][f"response_{changed.lower()}"]
    assert "flipped" in shown[0]["tags"] and shown[0]["cited"] is None  # label-wrong: not asked
    assert "flipped" not in shown[1]["tags"] and shown[1]["cited"] == "true"


def test_a_probed_label_game_shows_the_changed_answer_and_the_note(tmp_path):
    from tests.support.label_probes import responder as label_responder

    with LoopbackServer(label_responder()) as server:
        assert main([
            "run", "judgebench", "--sample", "--genrm-model", "follower", "--genrm-base-url",
            server.base_url, "--probe", "bandwagon", "--output-dir", str(tmp_path / "runs"),
        ]) == 0  # fmt: skip
    assert main(["view", str(tmp_path / "runs"), "--output-dir", str(tmp_path / "view")]) == 0
    (page,) = (tmp_path / "view").glob("*.html")
    card = "document.querySelector('details.item[data-index=\"0\"]')"
    with chromium(tmp_path / "profile") as browser:
        browser.navigate(page.as_uri())
        browser.evaluate(f"{card}.querySelector('summary').click()")
        shown = browser.wait_for(
            f"(() => {{ const body = {card}.querySelector('.item-body'); return body && {{"
            " games: [...body.querySelectorAll('.game h3')].map((h) => h.textContent),"
            " notes: [...body.querySelectorAll('.probe-note')].map((n) => n.textContent),"
            " texts: body.querySelectorAll('.probe-text').length }; })()"
        )
    assert len(shown["games"]) == 4 and "probe bandwagon" in shown["games"][2]
    assert len(shown["notes"]) == 2 and all("Note shown before" in n for n in shown["notes"])
    assert shown["texts"] == 2
