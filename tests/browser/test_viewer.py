"""``ralign view`` on the runs recorded by the suite (the ``runs`` fixture of
``tests/recorded_runs.py``): the pages written, the data they embed, and the pages themselves
driven in headless Chromium over the DevTools protocol (``tests/cdp.py``).

Set ``RALIGN_VIEWER_SCREENSHOT=<file.png>`` to keep the browser test's screenshot (the README
image)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import struct
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ralign_tasks.cli import main
from ralign_tasks.protocols import metric_label
from ralign_tasks.protocols.rationale import RC_TASK
from ralign_tasks.report.runs import RunItem, TaskResult, load_runs
from ralign_tasks.report.viewer import script_json, write_views
from tests.support.cdp import Page, chromium
from tests.support.recorded_runs import CLI_GENRM, INSPECT_GENRM, JSON_GENRM
from tests.support.viewer_page import (
    BUTTON_COUNTS,
    SHOWN,
    VISIBLE_OUTCOMES,
    expected_counts,
    expected_outcome,
)

pytestmark = pytest.mark.slow  # the recorded harness runs (an lm_eval subprocess) and Chromium

PAGES = {
    (CLI_GENRM, "ralign_helpsteer3"): "cli-genrm__ralign_helpsteer3.html",
    ("genrm", "ralign_helpsteer3"): "genrm__ralign_helpsteer3.html",
    ("genrm", "ralign_ppe"): "genrm__ralign_ppe.html",
    (INSPECT_GENRM, "ralign_helpsteer3"): "openai-api_loop_other__ralign_helpsteer3.html",
    (JSON_GENRM, "ralign_helpsteer3"): "openai-api_loop_other-json__ralign_helpsteer3.html",
}
ITEM_FIELDS = {
    "kind", "id", "subset", "label", "verdict", "outcome", "context", "prompt", "response_a",
    "response_b", "golden_rationale", "output", "call_fail", "no_verdict", "truncated",
    "label_correct", "meta", "meta_answer", "meta_error", "swapped", "consistent", "probed",
    "reasons", "reason_types", "extract_answer", "extract_error", "types_error",
}  # fmt: skip
_DATA = re.compile(r'<script type="application/json" id="ralign-data">(.*?)</script>', re.DOTALL)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def view(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(["view", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def embedded(page: Path) -> dict[str, Any]:
    (text,) = _DATA.findall(page.read_text(encoding="utf-8"))
    return json.loads(text)


@pytest.fixture(scope="module")
def results(runs) -> dict[tuple[str, str], TaskResult]:
    loaded, warnings = load_runs([runs["root"] / "runs"])
    assert not warnings
    return {(r.genrm, r.task): r for r in loaded}


@pytest.fixture(scope="module")
def pages(runs, tmp_path_factory) -> dict[tuple[str, str], Path]:
    out = tmp_path_factory.mktemp("view")
    # A relative PATH, as typed in a shell: the pages (and the README screenshot) show sources
    # as `runs/...`, not as this machine's temporary folder.
    here = os.getcwd()
    os.chdir(runs["root"])
    try:
        assert main(["view", "runs", "--output-dir", str(out)]) == 0
    finally:
        os.chdir(here)
    return {key: out / name for key, name in PAGES.items()}


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[Page]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as page:
        yield page


# --- the pages and their data -------------------------------------------------------------


def test_one_page_per_fidelity_run(runs, tmp_path, capsys):
    code, out, err = view([str(runs["root"] / "runs"), "--output-dir", str(tmp_path)], capsys)
    assert code == 0 and not err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(PAGES.values())
    assert sorted(out.splitlines()) == sorted(f"written: {tmp_path / n}" for n in PAGES.values())
    page = tmp_path / PAGES[(INSPECT_GENRM, "ralign_helpsteer3")]
    # Self-contained (a small run): the items are in the page, no chunk files are named (or
    # were written, above), and the markup loads nothing from anywhere.
    assert "chunks" not in embedded(page) and embedded(page)["items"]
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"""<\w+[^>]*\s(src|href)\s*=|@import|url\(|https?://""", text)
    assert f"<title>{INSPECT_GENRM} · ralign_helpsteer3 — R-Align viewer</title>" in text


def test_embedded_data_has_every_item_and_its_outcome(runs, results, pages):
    for key, result in results.items():
        data = embedded(pages[key])
        assert (data["genrm"], data["task"]) == key
        assert Path(runs["root"], data["source"]) == Path(result.source)  # viewed as `runs`
        assert data["n"] == result.n == len(result.items) == len(data["items"]) > 0
        for item, shown in zip(result.full_items(), data["items"], strict=True):
            assert set(shown) == ITEM_FIELDS
            assert shown["id"] == item.id
            for field in ("prompt", "response_a", "response_b", "golden_rationale", "label"):
                assert shown[field] == item.record[field]
            assert shown["context"] == item.record["context"]
            assert (shown["output"], shown["verdict"]) == (item.output, item.verdict)
            first = [call for call in item.judge if call.get("slot", 0) == 0][-1:] or [{}]
            assert shown["meta_answer"] == first[0].get("answer")
            assert shown["meta_error"] == first[0].get("error")
            assert shown["outcome"] == expected_outcome(item.outcome)
        shown_counts = Counter(i["outcome"] for i in data["items"])
        assert {k: shown_counts[k] for k in expected_counts(result)} == expected_counts(result)
        assert sum(shown_counts.values()) == len(result.items)
        failures = {f["label"]: f["count"] for f in data["failures"]}
        for name in ("genrm_no_verdict", "meta_parse_fail", "meta_call_fail"):
            assert failures[metric_label(name)] == result.counts[name]
        assert [m["value"] for m in data["metrics"]] == [
            f"{result.values[m] * 100:.1f}%" for m in ("l_acc", "s_corr", "f_score")
        ]
    # The scripted Inspect run (tests/scripted.py): items 0 and 1 are judged Correct and
    # Incorrect, 3 and 7 pick the wrong answer, the other four fail somewhere.
    assert expected_counts(results[(INSPECT_GENRM, "ralign_helpsteer3")]) == {
        "faithful": 1, "spurious": 1, "label-wrong": 2, "failures": 4,
    }  # fmt: skip


def test_runs_without_items_are_warned_about_and_skipped(runs, tmp_path, capsys):
    root = runs["root"]
    code, out, err = view(
        [str(root / "runs"), str(root / "partial"), "--output-dir", str(tmp_path)], capsys
    )
    assert code == 0
    assert len(out.splitlines()) == len(PAGES)
    (warning,) = err.splitlines()
    assert "partial" in warning and "ralign_helpsteer3" in warning
    assert "no per-item samples (run lm-eval with --log_samples)" in warning

    code, out, err = view([str(root / "partial"), "--output-dir", str(tmp_path / "p")], capsys)
    assert code == 1 and not out
    assert "--log_samples" in err and "no R-Align run with per-item samples" in err
    assert not (tmp_path / "p").exists()


def test_runs_without_items_are_skipped_and_page_names_are_safe_and_unique(results, tmp_path):
    base = results[(INSPECT_GENRM, "ralign_helpsteer3")]
    rc = dataclasses.replace(base, task=RC_TASK.task, items=[])
    odd = dataclasses.replace(base, genrm="../we ird:Model")
    clash = dataclasses.replace(base, genrm="../WE IRD:model")
    warnings: list[str] = []
    written = write_views([rc, odd, clash, odd], tmp_path / "out", warnings)
    assert [p.name for p in written] == [
        "we_ird_Model__ralign_helpsteer3.html",
        "WE_IRD_model__ralign_helpsteer3-2.html",
        "we_ird_Model__ralign_helpsteer3-3.html",
    ]
    assert all(p.parent == tmp_path / "out" and p.is_file() for p in written)
    (warning,) = warnings
    assert RC_TASK.task in warning and INSPECT_GENRM in warning
    assert "not viewed: no per-item samples in the log" in warning


def test_embedded_json_cannot_end_its_script_element():
    text = "</script><!--<script>alert(1)</script> & </SCRIPT"
    encoded = script_json({"text": text})
    assert "<" not in encoded and ">" not in encoded and "&" not in encoded
    assert json.loads(encoded) == {"text": text}


# --- in a real browser ---------------------------------------------------------------------


def test_outcome_filter_and_an_opened_item_in_chromium(browser, results, pages):
    key = (INSPECT_GENRM, "ralign_helpsteer3")
    result, counts = results[key], expected_counts(results[key])
    browser.navigate(pages[key].as_uri())
    assert browser.evaluate(SHOWN) == len(result.items)
    assert browser.evaluate(BUTTON_COUNTS) == {"all": len(result.items), **counts}

    browser.evaluate("document.querySelector('#outcome-filter button[value=spurious]').click()")
    assert browser.evaluate(SHOWN) == counts["spurious"]
    assert browser.evaluate(VISIBLE_OUTCOMES) == ["spurious"] * counts["spurious"]
    assert browser.evaluate("document.getElementById('shown').textContent") == (
        f"showing {counts['spurious']} of {len(result.items)}"
    )
    assert browser.evaluate("location.hash") == "#outcome=spurious"

    index = browser.evaluate(
        "(() => { const card = [...document.querySelectorAll('details.item')]"
        ".find((c) => c.checkVisibility()); card.querySelector('summary').click();"
        " return +card.dataset.index; })()"
    )
    item = list(result.full_items())[index]
    card = f"document.querySelector('details.item[data-index=\"{index}\"]')"
    golden = browser.wait_for(
        f"(() => {{ const t = {card}.querySelector('.golden .text');"
        " return t && t.checkVisibility() && t.textContent; })()"
    )
    assert golden == item.record["golden_rationale"]
    better = browser.evaluate(f"{card}.querySelector('.better-answer .text').textContent")
    assert better == item.record[f"response_{item.record['label'].lower()}"]
    meta_answer = browser.evaluate(f"{card}.querySelector('.meta-answer').textContent")
    assert meta_answer == item.judge[-1]["answer"]

    png = browser.screenshot()
    assert png.startswith(PNG_MAGIC) and len(png) > 20_000
    assert struct.unpack(">II", png[16:24]) == (1280, 900)
    if target := os.environ.get("RALIGN_VIEWER_SCREENSHOT"):
        Path(target).write_bytes(png)


def test_filters_are_read_from_and_written_to_the_url_hash(browser, results, pages):
    key = (INSPECT_GENRM, "ralign_helpsteer3")
    result, counts = results[key], expected_counts(results[key])
    browser.navigate("about:blank")
    browser.navigate(pages[key].as_uri() + "#outcome=label-wrong")
    assert browser.evaluate(SHOWN) == counts["label-wrong"]
    assert browser.evaluate(VISIBLE_OUTCOMES) == ["label-wrong"] * counts["label-wrong"]
    pressed = "document.querySelector('#outcome-filter [aria-pressed=true]').value"
    assert browser.evaluate(pressed) == "label-wrong"

    # Editing the hash of the open page applies it too.
    browser.evaluate("location.hash = '#outcome=faithful'")
    assert browser.wait_for(f"{SHOWN} === {counts['faithful']} && {pressed} === 'faithful'")
    # An unknown value, even one naming a JavaScript object member, means no filter.
    browser.evaluate("location.hash = '#outcome=constructor&subset=__proto__'")
    assert browser.wait_for(f"{SHOWN} === {len(result.items)} && {pressed} === 'all'")

    # The subset select and the search box, used as a user would, filter and update the hash.
    subset, in_subset = Counter(i.outcome.subset for i in result.items).most_common(1)[0]
    browser.evaluate(
        "{ document.querySelector('#outcome-filter button[value=all]').click();"
        "  const select = document.getElementById('subset-filter');"
        f" select.value = {json.dumps(subset)};"
        "  select.dispatchEvent(new Event('change')); }"
    )
    assert browser.evaluate(SHOWN) == in_subset
    wanted = result.items[-1]
    browser.evaluate(
        "{ const box = document.getElementById('search');"
        f" box.value = {json.dumps(wanted.id.upper())};"
        "  box.dispatchEvent(new Event('input')); }"
    )
    assert browser.evaluate(SHOWN) == (wanted.outcome.subset == subset)
    hash_state = browser.evaluate("Object.fromEntries(new URLSearchParams(location.hash.slice(1)))")
    assert hash_state == {"subset": subset, "q": wanted.id.upper()}


def test_a_narrow_window_needs_no_horizontal_scrolling(browser, pages):
    browser.set_viewport(390, 800, mobile=True)
    try:
        browser.navigate(pages[("genrm", "ralign_ppe")].as_uri())
        browser.evaluate("document.querySelector('details.item summary').click()")
        browser.wait_for("!!document.querySelector('.item-body')")
        assert browser.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    finally:
        browser.set_viewport(1280, 900)


def test_untrusted_text_is_shown_as_text(browser, results, tmp_path):
    hostile = (
        "</script><script>window.__pwned = 1; alert(1)</script><b>bold</b>"
        '<img src=x onerror="window.__pwned = 2"><!--<script>'
    )
    base = results[(INSPECT_GENRM, "ralign_helpsteer3")]
    first = next(base.full_items())
    record = {**first.record, "id": "<b>id</b>", "prompt": hostile, "golden_rationale": hostile}
    item = RunItem(record, hostile, first.verdict, first.outcome,
                   judge=({"slot": 0, "answer": hostile, "error": hostile},))  # fmt: skip
    # reader=None: this one item, not the run's files.
    result = dataclasses.replace(base, genrm="<b>GenRM</b>", items=[item], reader=None)
    (page,) = write_views([result], tmp_path, [])
    assert page.read_text(encoding="utf-8").count("</script>") == 2

    # An alert would block the page (and this test): record it instead. Page.enable: without
    # it Chromium ignores scripts added to run on new documents.
    browser.send("Page.enable")
    guard = browser.send(
        "Page.addScriptToEvaluateOnNewDocument",
        source="window.alert = () => { window.__pwned = 'alert'; };",
    )
    try:
        browser.navigate(page.as_uri())
        browser.evaluate("document.querySelector('details.item summary').click()")
        browser.wait_for("!!document.querySelector('.item-body')")
        shown = browser.evaluate(
            "(() => { const body = document.querySelector('.item-body'); return {"
            " pwned: window.__pwned === undefined ? null : String(window.__pwned),"
            " prompt: body.querySelector('.prompt .text').textContent,"
            " output: body.querySelector('.genrm .text').textContent,"
            " id: document.querySelector('.item-id').textContent,"
            " genrm: document.getElementById('run-genrm').textContent,"
            " title: document.title,"
            " markup: document.querySelectorAll('.item-body b, .item-id *, #run-genrm *, img')"
            ".length }; })()"
        )
    finally:
        browser.send("Page.removeScriptToEvaluateOnNewDocument", identifier=guard["identifier"])
    assert shown == {
        "pwned": None,
        "prompt": hostile,
        "output": hostile,
        "id": "<b>id</b>",
        "genrm": "<b>GenRM</b>",
        "title": "<b>GenRM</b> · ralign_helpsteer3 — R-Align viewer",
        "markup": 0,
    }


def test_a_run_without_a_meta_judge_has_a_not_judged_filter(results, tmp_path):
    base = results[(INSPECT_GENRM, "ralign_helpsteer3")]
    items = [
        dataclasses.replace(i, outcome=dataclasses.replace(i.outcome, meta=None, judged=False))
        for i in base.full_items()
    ]
    unjudged = dataclasses.replace(base, genrm="unjudged", items=items, reader=None)
    pages = write_views([unjudged, base], tmp_path, [])
    data, judged = embedded(pages[0]), embedded(pages[1])
    assert "unjudged" in [o["key"] for o in data["outcomes"]]
    verdict_ok = [
        i.outcome.label_correct and not (i.outcome.genrm_call_fail or i.outcome.genrm_no_verdict)
        for i in items
    ]
    assert sum(i["outcome"] == "unjudged" for i in data["items"]) == sum(verdict_ok) > 0
    assert "unjudged" not in [o["key"] for o in judged["outcomes"]]
