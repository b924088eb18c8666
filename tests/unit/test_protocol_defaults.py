"""What the Protocol derives for every family: the i-th GenRM prompt alone (a harness renders only
the prompt it sends) and a record's document form (from its dataclass fields)."""

from __future__ import annotations

import json

import pytest

from ralign_tasks.data import sample_data_dir
from ralign_tasks.lm_eval_adapter.tasks import OPTIONS_KEY, PROMPT_INDEX_KEY, doc_to_text
from ralign_tasks.protocols import TASK_KEY, TASKS, load_task, protocol_of
from ralign_tasks.protocols.label import LabelProtocol

CASES = [(task, {}) for task in TASKS] + [
    ("ralign_helpsteer3", {"swap": True}),
    ("ralign_helpsteer3", {"samples": 3}),
]


@pytest.mark.parametrize(("task", "given"), CASES, ids=[f"{t}{g or ''}" for t, g in CASES])
def test_each_prompt_alone_is_the_same_as_in_the_list(task, given):
    protocol = protocol_of(task)
    options = protocol.option_values(given, task)
    for record in load_task(task, sample_data_dir()).records[:3]:
        every = protocol.genrm_prompts(record, options)
        assert len(every) == protocol.prompt_count(record, options)
        assert [protocol.genrm_prompt(record, options, i) for i in range(len(every))] == every


def test_lm_eval_renders_only_the_prompt_of_the_request(monkeypatch):
    protocol = protocol_of("ralign_rmbench")
    assert isinstance(protocol, LabelProtocol)
    record = load_task("ralign_rmbench", sample_data_dir()).records[0]
    options = protocol.option_values({}, "ralign_rmbench")
    doc = {
        **protocol.record_to_dict(record),
        TASK_KEY: "ralign_rmbench",
        OPTIONS_KEY: json.dumps(options),
        PROMPT_INDEX_KEY: 4,
    }
    rendered = []
    render = type(protocol).render
    monkeypatch.setattr(
        type(protocol), "render", lambda self, *args: rendered.append(args) or render(self, *args)
    )
    assert doc_to_text(doc) == protocol.genrm_prompts(record, options)[4]
    assert len(rendered) == 1 + 9  # the request's prompt, then the list it is checked against


@pytest.mark.parametrize("task", sorted(TASKS))
def test_a_record_survives_its_document_form_through_json(task):
    from dataclasses import MISSING, fields, replace

    protocol = protocol_of(task)
    for record in load_task(task, sample_data_dir()).records:
        document = json.loads(json.dumps(protocol.record_to_dict(record)))
        # Fields kept out of the document form (reference outputs) come back as their default.
        left_out = {
            f.name: f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
            for f in fields(record)
            if not f.metadata.get("document", True)
        }
        assert protocol.record_from_dict(document) == replace(record, **left_out)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_a_document_missing_a_field_is_an_error_naming_it(task):
    protocol = protocol_of(task)
    record = load_task(task, sample_data_dir()).records[0]
    document = protocol.record_to_dict(record)
    name = "prompt" if "prompt" in document else next(iter(document))
    with pytest.raises(KeyError, match=name):
        protocol.record_from_dict({k: v for k, v in document.items() if k != name})
    with pytest.raises(KeyError, match=name):
        protocol.record_from_dict({**document, name: None})


def test_a_comparison_of_no_shared_items_is_undefined_not_an_error():
    from ralign_tasks.protocols import PROTOCOLS

    for protocol in PROTOCOLS:
        compared = protocol.paired_difference([], [], draws=10)
        assert all(entry["difference"] is None for entry in compared.values()), protocol.name
