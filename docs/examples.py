"""Regenerate, or check, the example outputs of README.md and docs/*.md.

A documented example is an HTML comment naming the command, followed by a ``console`` block::

    <!-- example: ralign run helpsteer3 --sample -->
    ```console
    $ ralign run helpsteer3 --sample
    …what it printed…
    ```

Each page's examples run in order, in one temporary folder of their own (so a later example can
read what an earlier one wrote), through ``bash -o pipefail -c`` with this environment:
``$URL`` is the stand-in server of ``python -m ralign_tasks.testing.loopback`` (run in this
process), and the GenRM and meta-judge point at it as the README's quick start sets them up
(``RALIGN_GENRM_MODEL=genrm``, ``RALIGN_METAJUDGE_MODEL=judge``, both base URLs ``$URL``;
Inspect's ``openai-api/loop/…`` through ``LOOP_BASE_URL``); ``$OTHER_URL`` is a second
scripted GenRM and judge (see :func:`other`); ``$BUSY_URL`` answers every request with 503;
``$JUDGEBENCH`` is the copy of the JudgeBench repository's ``data/`` and ``outputs/`` in
``../shared/data`` (an example using it is skipped where that folder is absent, unless
``RALIGN_REQUIRE_SHARED_DATA`` is set). The block shows the command, its stdout (stderr only
where the command says ``2>&1``) and a non-zero exit status. What varies from run to run is
normalised: the loopback ports (``127.0.0.1:<port>``), durations (``<t>s``), Inspect's log
names and total time, the temporary folder, progress bars, trailing spaces.

    python docs/examples.py            # rewrite every block from a fresh run
    python docs/examples.py --check    # exit 1 naming each block that differs, with a diff
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ralign_tasks.testing.loopback import (
    GENRM_PICKS_A,
    LoopbackServer,
    Reply,
    is_metajudge_prompt,
    prompt_of,
    stand_in,
)

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHARED_DATA = ROOT.parent / "shared" / "data"
BLOCK = re.compile(
    r"^<!-- example: (?P<command>.+?) -->\n```console\n(?P<body>.*?)^```$", re.M | re.S
)
TIMEOUT_S = 180


@dataclass
class Example:
    page: Path
    line: int
    command: str
    start: int  # the block's body, as offsets into the page's text
    end: int
    body: str


def other(body: dict[str, Any]) -> str:
    """A second scripted GenRM and judge, fixed per prompt: the GenRM picks A or B and the
    meta-judge says Correct or Incorrect as the prompt's CRC-32 decides."""
    bit = zlib.crc32(prompt_of(body).encode()) % 3
    if is_metajudge_prompt(body):
        verdict = "Incorrect" if bit == 0 else "Correct"
        return (
            "<golden_key_points>k</golden_key_points>\n<genrm_analysis>a</genrm_analysis>\n"
            f"<final_verdict>{verdict}</final_verdict>"
        )
    return GENRM_PICKS_A if bit else "Assistant B is better.\n\\boxed{B}"


def busy(body: dict[str, Any]) -> Reply:
    return Reply("model overloaded", status=503)


def find_examples(page: Path) -> list[Example]:
    text = page.read_text(encoding="utf-8")
    examples = []
    for m in BLOCK.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        start, end = m.span("body")
        examples.append(Example(page, line, m.group("command"), start, end, m.group("body")))
    return examples


_PROGRESS = re.compile(r"\d+%\|.*\| *\d+/\d+")
_LOG_NAME = re.compile(r"\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d[-+]\d\d-\d\d_([\w-]+?)_[A-Za-z0-9]{22}\.")


def normalise(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        text = text.replace(old, new)
    text = re.sub(r"127\.0\.0\.1:\d{4,5}", "127.0.0.1:<port>", text)
    text = re.sub(r"\[\d\d/\d\d/\d\d \d\d:\d\d:\d\d\]", "[MM/DD/YY HH:MM:SS]", text)
    text = re.sub(r"\b\d+\.\d+s\b", "<t>s", text)
    text = re.sub(r"(total time: +)\d+:\d\d:\d\d", r"\g<1>H:MM:SS", text)
    text = _LOG_NAME.sub(r"<date>_\1_<id>.", text)
    lines = []
    for line in text.split("\n"):
        line = line.split("\r")[-1].rstrip()
        if not _PROGRESS.search(line):
            lines.append(line)
    return "\n".join(lines).strip("\n")


def run(example: Example, cwd: Path, env: dict[str, str], replacements: dict[str, str]) -> str:
    command = ["bash", "-o", "pipefail", "-c", example.command]
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    if "Traceback" in done.stderr:  # a broken tree, not an example: say so
        print(f"{example.page.name}: {example.command}: {done.stderr[-800:]}", file=sys.stderr)
    output = normalise(done.stdout, replacements)
    status = f"\n[exit status {done.returncode}]" if done.returncode else ""
    return f"$ {example.command}\n{output}{status}\n"


def environment(urls: dict[str, str], folder: Path) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("RALIGN_", "INSPECT_", "OPENAI_", "LOOP_", "HF_"))
    }
    url = urls["URL"]
    env.update(urls)
    env.update(
        RALIGN_GENRM_MODEL="genrm", RALIGN_GENRM_BASE_URL=url,
        RALIGN_METAJUDGE_MODEL="judge", RALIGN_METAJUDGE_BASE_URL=url,
        LOOP_BASE_URL=url, LOOP_API_KEY="unused",
        RALIGN_CACHE_DIR=str(folder / ".cache"), INSPECT_CACHE_DIR=str(folder / ".inspect_cache"),
        HF_HOME=str(folder / ".hf"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1", JUDGEBENCH=str(SHARED_DATA / "judgebench"),
        COLUMNS="100", PYTHONUNBUFFERED="1", NO_COLOR="1", TERM="dumb",
    )  # fmt: skip
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def skipped(example: Example) -> bool:
    if "$JUDGEBENCH" not in example.command or SHARED_DATA.is_dir():
        return False
    if os.environ.get("RALIGN_REQUIRE_SHARED_DATA"):
        raise SystemExit(f"{SHARED_DATA} is absent: {example.command} cannot be checked")
    return True


def regenerate(pages: list[Path]) -> Iterator[tuple[Example, str]]:
    """Each example of ``pages`` with what its command prints now."""
    with ExitStack() as stack:
        servers = {
            name: stack.enter_context(LoopbackServer(responder))
            for name, responder in (("URL", stand_in), ("OTHER_URL", other), ("BUSY_URL", busy))
        }
        urls = {name: server.base_url for name, server in servers.items()}
        for page in pages:
            examples = find_examples(page)
            if not examples:
                continue
            with tempfile.TemporaryDirectory(prefix="ralign-docs-") as folder:
                cwd = Path(folder).resolve()
                env = environment(urls, cwd)
                replacements = {
                    f"{cwd}/": "", str(cwd): ".", str(SHARED_DATA / "judgebench"): "$JUDGEBENCH"
                }  # fmt: skip
                for example in examples:
                    if not skipped(example):
                        yield example, run(example, cwd, env, replacements)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on a change")
    parser.add_argument("pages", nargs="*", type=Path, help="default: README.md and docs/*.md")
    args = parser.parse_args(argv)
    pages = [page.resolve() for page in args.pages] or PAGES
    fresh: dict[Path, list[tuple[Example, str]]] = {}
    for example, body in regenerate(pages):
        fresh.setdefault(example.page, []).append((example, body))
    stale = 0
    for page, results in fresh.items():
        where = page.relative_to(ROOT)
        changed = [(example, body) for example, body in results if body != example.body]
        for example, body in changed:
            print(f"{where}:{example.line}: {example.command}")
            if args.check:
                diff = difflib.unified_diff(
                    example.body.splitlines(), body.splitlines(), "documented", "printed",
                    lineterm="", n=1,
                )  # fmt: skip
                print("\n".join(f"    {line}" for line in diff))
        stale += len(changed)
        if changed and not args.check:
            text = page.read_text(encoding="utf-8")
            for example, body in sorted(changed, key=lambda pair: -pair[0].start):
                text = text[: example.start] + body + text[example.end :]
            page.write_text(text, encoding="utf-8")
    total = sum(len(results) for results in fresh.values())
    verb = "differ from what their commands print" if args.check else "rewritten"
    print(f"{stale} of {total} example block(s) {verb}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
