"""``ralign view`` of a 50,000-item run (issue 15): a page with the index and a folder of
chunk files, none over 20 MB, written without holding the run's texts; in headless Chromium the
counts and filters cover every item, the list is paged, and opening an item loads its chunk
then (and only then) and shows that row's own texts. Also: a page moved with its folder, a
missing chunk, and hostile text inside a chunk."""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ralign_tasks.report.runs import RunItem, TaskResult, load_runs
from ralign_tasks.report.viewer import write_views
from tests.support.big_run import record_sample_run, replicate
from tests.support.cdp import Page, chromium
from tests.support.viewer_page import (
    BUTTON_COUNTS,
    SHOWN,
    VISIBLE_OUTCOMES,
    expected_counts,
    expected_outcome,
)

ITEMS = 50_000
OPENED = 43_210  # an item far down the list, in a chunk of its own
MAX_FILE = 20_000_000
MAX_PEAK_KB = 1_000_000  # `ralign view`'s peak memory (3.9 GB before the chunked pages)
PAGE_SIZE = 100
_DATA = re.compile(r'<script type="application/json" id="ralign-data">(.*?)</script>', re.DOTALL)
# `ralign view` in a process of its own, so that its peak memory is its own.
_VIEW = (
    "import resource, sys\n"
    "from ralign_tasks.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print('peak_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    "sys.exit(code)\n"
)
# Before the page's script runs: record the number of every chunk the page receives.
_RECORD_CHUNKS = """
window.__chunks = [];
(() => {
  let receive;
  Object.defineProperty(window, "ralignChunk", {
    configurable: true,
    get: () => (number, items) => { window.__chunks.push(number); return receive(number, items); },
    set: (fn) => { receive = fn; },
  });
})();
"""


@dataclasses.dataclass
class BigView:
    run: Path
    page: Path
    result: TaskResult
    peak_kb: int


def embedded(page: Path) -> dict[str, Any]:
    (text,) = _DATA.findall(page.read_text(encoding="utf-8"))
    return json.loads(text)


def card(index: int) -> str:
    return f"document.querySelector('details.item[data-index=\"{index}\"]')"


def open_card(browser: Page, index: int) -> None:
    browser.evaluate(f"{card(index)}.querySelector('summary').click()")


def text_of(index: int, selector: str) -> str:
    """A JavaScript expression: the text of ``selector`` in the opened item, once shown."""
    return (
        f"(() => {{ const t = {card(index)}.querySelector({json.dumps(selector)});"
        " return t && t.checkVisibility() && t.textContent; })()"
    )


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> BigView:
    root = tmp_path_factory.mktemp("big")
    run = replicate(record_sample_run(root / "sample"), root / "run", ITEMS)
    out = root / "view"
    done = subprocess.run(
        [sys.executable, "-c", _VIEW, "view", str(run), "--output-dir", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (page,) = out.glob("*.html")
    (result,), _ = load_runs([run])
    peak_kb = int(re.search(r"peak_kb (\d+)", done.stdout).group(1))
    return BigView(run, page, result, peak_kb)


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[Page]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as page:
        yield page


def row(run: Path, index: int) -> dict[str, Any]:
    """Line ``index`` of the run's samples file."""
    with (run / "samples.jsonl").open(encoding="utf-8") as file:
        return json.loads(next(itertools.islice(file, index, None)))


def test_a_large_run_is_an_index_page_and_chunks_of_at_most_20_mb(big):
    out, folder = big.page.parent, big.page.with_name(f"{big.page.stem}_items")
    assert sorted(p.name for p in out.iterdir()) == sorted([big.page.name, folder.name])
    data = embedded(big.page)
    assert len(data["index"]) == ITEMS and "items" not in data
    assert data["chunks"]["folder"] == folder.name
    assert sorted(p.name for p in folder.iterdir()) == data["chunks"]["files"]
    sizes = {p: p.stat().st_size for p in [big.page, *folder.iterdir()]}
    assert max(sizes.values()) <= MAX_FILE, max(sizes.items(), key=lambda kv: kv[1])
    assert big.peak_kb < MAX_PEAK_KB


def test_a_large_run_opens_filters_and_loads_an_item_lazily_in_chromium(big, browser):
    counts = expected_counts(big.result)
    # Page.enable: without it Chromium ignores scripts added to run on new documents.
    browser.send("Page.enable")
    guard = browser.send("Page.addScriptToEvaluateOnNewDocument", source=_RECORD_CHUNKS)
    try:
        browser.navigate(big.page.as_uri())
        assert browser.evaluate(SHOWN) == ITEMS
        assert browser.evaluate(BUTTON_COUNTS) == {"all": ITEMS, **counts}
        assert browser.evaluate("document.querySelectorAll('details.item').length") == PAGE_SIZE
        assert browser.evaluate("document.getElementById('page-label').textContent") == (
            f"items 1\u2013100 · page 1 of {ITEMS // PAGE_SIZE}"
        )

        # An outcome and a subset, over all 50,000 items.
        outcomes = [expected_outcome(item.outcome) for item in big.result.items]
        subsets = [item.outcome.subset for item in big.result.items]
        browser.evaluate("document.querySelector('#outcome-filter button[value=failures]').click()")
        assert browser.evaluate(SHOWN) == counts["failures"]
        assert browser.evaluate(VISIBLE_OUTCOMES) == ["failures"] * PAGE_SIZE
        subset, matches = Counter(
            s for o, s in zip(outcomes, subsets, strict=True) if o == "failures"
        ).most_common(1)[0]
        browser.evaluate(
            "{ const select = document.getElementById('subset-filter');"
            f" select.value = {json.dumps(subset)}; select.dispatchEvent(new Event('change')); }}"
        )
        assert browser.evaluate(SHOWN) == matches
        assert PAGE_SIZE < matches < counts["failures"]
        browser.evaluate("document.getElementById('page-next').click()")
        assert browser.evaluate("location.hash") == f"#outcome=failures&subset={subset}&page=2"
        first = browser.evaluate("+document.querySelector('details.item').dataset.index")
        assert (outcomes[first], subsets[first]) == ("failures", subset)
        # The search covers ids (the prompts are in the chunks).
        browser.evaluate(
            "{ const box = document.getElementById('search'); box.value = 'BIG-43210';"
            "  box.dispatchEvent(new Event('input')); }"
        )
        assert browser.evaluate(SHOWN) == int(
            (outcomes[OPENED], subsets[OPENED]) == ("failures", subset)
        )
        assert browser.evaluate("window.__chunks") == []  # no item text loaded so far

        # An item on a later page: its chunk is loaded, and it shows that row's texts.
        index = next(i for i in range(OPENED, ITEMS) if outcomes[i] in ("faithful", "spurious"))
        browser.navigate("about:blank")
        browser.navigate(f"{big.page.as_uri()}#page={index // PAGE_SIZE + 1}")
        open_card(browser, index)
        stored = row(big.run, index)
        assert browser.wait_for(text_of(index, ".genrm .text")) == stored["item"]["genrm"]["output"]
        assert stored["item"]["genrm"]["output"].endswith(f"[row {index}]")
        meta = browser.evaluate(f"{card(index)}.querySelector('.meta-answer').textContent")
        assert meta == stored["item"]["judge"][-1]["answer"]
        golden = browser.evaluate(text_of(index, ".golden .text"))
        assert golden == stored["doc"]["golden_rationale"]
        starts = embedded(big.page)["chunks"]["starts"]
        assert browser.evaluate("window.__chunks") == [bisect.bisect_right(starts, index) - 1]
    finally:
        browser.send("Page.removeScriptToEvaluateOnNewDocument", identifier=guard["identifier"])


def test_a_moved_page_loads_its_chunks_and_names_a_missing_one(big, browser, tmp_path):
    moved = tmp_path / "moved"
    folder = big.page.with_name(f"{big.page.stem}_items")
    shutil.copytree(folder, moved / folder.name)
    shutil.copy(big.page, moved)
    starts = embedded(big.page)["chunks"]["starts"]
    missing = embedded(big.page)["chunks"]["files"][-1]
    (moved / folder.name / missing).unlink()

    browser.navigate((moved / big.page.name).as_uri())
    open_card(browser, 0)
    assert browser.wait_for(text_of(0, ".prompt .text")) == row(big.run, 0)["doc"]["prompt"]

    last = ITEMS - 1
    browser.navigate("about:blank")
    browser.navigate(f"{(moved / big.page.name).as_uri()}#page={ITEMS // PAGE_SIZE}")
    open_card(browser, last)
    error = browser.wait_for(
        f"(() => {{ const s = {card(last)}.querySelector('.item-status.bad');"
        " return s && s.checkVisibility() && s.textContent; })()"
    )
    assert f"{folder.name}/{missing}" in error and "missing" in error
    assert f"items {starts[-1] + 1}\u2013{ITEMS}" not in error  # the loading line, replaced
    assert not browser.evaluate(f"{card(last)}.querySelector('.item-body')")


def test_hostile_text_in_a_chunk_is_shown_as_text(big, browser, tmp_path):
    hostile = (
        "</script><script>window.__pwned = 1</script><b>bold</b><!--"
        " \u2028line\u2029para é 中文 \\ \" ' ]); window.__pwned = 2; ralignChunk(0, [ "
    )
    first = next(big.result.full_items())
    record = {**first.record, "prompt": hostile, "golden_rationale": hostile}
    item = RunItem(record, hostile, first.verdict, first.outcome,
                   judge=({"slot": 0, "answer": hostile, "error": hostile},))  # fmt: skip
    result = dataclasses.replace(big.result, items=[item] * 3, reader=None)
    (page,) = write_views([result], tmp_path, [], inline_bytes=0, chunk_items=2)
    assert embedded(page)["chunks"]["files"] == ["chunk-00000.js", "chunk-00001.js"]
    browser.navigate(page.as_uri())
    open_card(browser, 2)
    assert browser.wait_for(text_of(2, ".genrm .text")) == hostile
    shown = browser.evaluate(
        f"(() => {{ const body = {card(2)}.querySelector('.item-body'); return {{"
        " pwned: window.__pwned === undefined ? null : String(window.__pwned),"
        " prompt: body.querySelector('.prompt .text').textContent,"
        " markup: body.querySelectorAll('b, script').length }; })()"
    )
    assert shown == {"pwned": None, "prompt": hostile, "markup": 0}


def test_the_run_has_every_outcome(big):
    # The replicated sample run's scripted judges give every outcome (the filters have work).
    tally = Counter(expected_outcome(item.outcome) for item in big.result.items)
    assert set(tally) == {"faithful", "spurious", "label-wrong", "failures"}
    assert sum(tally.values()) == ITEMS
