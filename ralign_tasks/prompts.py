"""GenRM and meta-judge prompts rendered from Jinja2 template files.

The bundled templates live in ``ralign_tasks/templates``; a user template given by path may
``{% include "_comparison.jinja" %}`` to reuse the shared context/prompt/A/B block.
"""

from __future__ import annotations

import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

import jinja2

from ralign_tasks.records import AtomicRecord, PairRecord
from ralign_tasks.scorers.verdict import strip_thinking

GENRM_TEMPLATE = "genrm_pairwise.jinja"
METAJUDGE_TEMPLATE = "metajudge.jinja"
ATOMIC_GENRM_TEMPLATE = "atomic_genrm.jinja"
ATOMIC_METAJUDGE_TEMPLATE = "atomic_metajudge.jinja"
GENRM_TEMPLATE_ENV = "RALIGN_GENRM_TEMPLATE"
METAJUDGE_TEMPLATE_ENV = "RALIGN_METAJUDGE_TEMPLATE"


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


def _comparison_vars(record: PairRecord) -> dict[str, object]:
    return {
        "context": [{"role": t.role, "content": t.content} for t in record.context],
        "prompt": record.prompt,
        "response_a": record.response_a,
        "response_b": record.response_b,
    }


def render_genrm_prompt(record: PairRecord, template_path: str | None = None) -> str:
    """The GenRM's pairwise-comparison prompt (one user message)."""
    path = template_path or os.environ.get(GENRM_TEMPLATE_ENV)
    return load_template(path, GENRM_TEMPLATE).render(**_comparison_vars(record)).strip()


def render_metajudge_prompt(
    record: PairRecord,
    genrm_output: str,
    template_path: str | None = None,
    *,
    order_swapped: bool = False,
    genrm_first: bool = False,
) -> str:
    """The meta-judge prompt: the comparison as the GenRM saw it, the golden rationale and the
    GenRM's output with its thinking removed (the meta-judge never sees the GenRM's thinking).
    ``order_swapped``: the GenRM saw the answers swapped (a swap run's second order), so the
    golden rationale names them the other way round, which the prompt says. ``genrm_first``:
    the GenRM's output comes before the golden rationale (the meta-judge position probe)."""
    path = template_path or os.environ.get(METAJUDGE_TEMPLATE_ENV)
    return (
        load_template(path, METAJUDGE_TEMPLATE)
        .render(
            **_comparison_vars(record),
            golden_rationale=record.golden_rationale,
            genrm_output=strip_thinking(genrm_output),
            order_swapped=order_swapped,
            genrm_first=genrm_first,
        )
        .strip()
    )


def render_atomic_genrm_prompt(record: AtomicRecord, template_path: str | None = None) -> str:
    """The HelpSteer3-Atomic GenRM prompt: ordered reasons, then a five-way verdict
    (A = response 1)."""
    variables = {
        "context": [{"role": t.role, "content": t.content} for t in record.context],
        "prompt": record.prompt,
        "response_a": record.response1,
        "response_b": record.response2,
    }
    return load_template(template_path, ATOMIC_GENRM_TEMPLATE).render(**variables).strip()


def render_rc_prompt(
    reasons: list[str], rationales: list[str], template_path: str | None = None
) -> str:
    """The Rationale Consistency MetaJudge prompt: model reasons as S items, human atomic
    rationales as R items."""
    template = load_template(template_path, ATOMIC_METAJUDGE_TEMPLATE)
    return template.render(reasons=reasons, rationales=rationales).strip()
