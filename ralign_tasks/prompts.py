"""Prompt templates: Jinja2 files, bundled or the user's, compiled once per process.

The bundled templates live in ``ralign_tasks/templates``; a user template given by path may
``{% include "_comparison.jinja" %}`` to reuse the shared context/prompt/A/B block.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path

import jinja2

from ralign_tasks.records import Turn, turn_dicts


def _bundled_dir() -> str:
    return str(resources.files("ralign_tasks") / "templates")


@lru_cache(maxsize=16)
def load_template(path: str | None, default_name: str) -> jinja2.Template:
    """Compile the template at ``path`` (or the bundled ``default_name``) once per process."""
    search_path = [_bundled_dir()]
    name = default_name
    if path:
        template_path = Path(path).expanduser().resolve()
        if not template_path.is_file():
            raise FileNotFoundError(f"prompt template not found: {template_path}")
        search_path.insert(0, str(template_path.parent))
        name = template_path.name
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(search_path),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,
        # An included template (``_comparison.jinja``) is looked up at every render; without
        # this its file is stat()ed each time to see whether it changed mid-run.
        auto_reload=False,
    )
    return env.get_template(name)


def comparison_vars(
    context: Sequence[Turn], prompt: str, response_a: str, response_b: str, note: str = ""
) -> dict[str, object]:
    """The variables of ``_comparison.jinja``: the dialogue so far, the request, a note shown
    before the answers (the bandwagon probe's; none: empty), answers A, B."""
    return {
        "context": turn_dicts(context),
        "prompt": prompt,
        "note": note,
        "response_a": response_a,
        "response_b": response_b,
    }
