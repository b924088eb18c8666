from dataclasses import replace

import pytest

from ralign_tasks.judge import resolve_judge
from ralign_tasks.protocols.fidelity import FIDELITY, render_genrm_prompt, render_metajudge_prompt
from ralign_tasks.records import Turn


def test_single_turn_prompt_has_no_context_block(sample_records):
    record = next(r for r in sample_records if not r.context)
    prompt = render_genrm_prompt(record)
    assert "[Conversation so far]" not in prompt
    assert record.prompt in prompt
    assert prompt.index(record.response_a) < prompt.index(record.response_b)
    assert prompt.rstrip().endswith("\\boxed{B} if Assistant B's answer is better.")


def test_multi_turn_prompt_shows_earlier_turns_in_order(sample_records):
    record = next(r for r in sample_records if r.context)
    prompt = render_genrm_prompt(record)
    assert "[Conversation so far]" in prompt
    positions = [prompt.index(turn.content) for turn in record.context]
    assert positions == sorted(positions)
    assert positions[-1] < prompt.index(record.prompt)


def test_answers_stay_in_stored_order(sample_records):
    record = replace(sample_records[0], response_a="FIRST-ANSWER", response_b="SECOND-ANSWER")
    prompt = render_genrm_prompt(record)
    assert prompt.index("[Assistant A's answer]\nFIRST-ANSWER") < prompt.index("SECOND-ANSWER")


def test_metajudge_prompt_hides_genrm_thinking(sample_records):
    record = replace(sample_records[0], context=(Turn("user", "earlier"), Turn("assistant", "x")))
    output = "<think>SECRET-THOUGHTS \\boxed{B}</think>\nA fixes the bug. \\boxed{A}"
    prompt = render_metajudge_prompt(record, output)
    assert "SECRET-THOUGHTS" not in prompt
    assert "<genrm_output>\nA fixes the bug. \\boxed{A}\n</genrm_output>" in prompt
    assert f"<golden_judge>\n{record.golden_rationale}\n</golden_judge>" in prompt
    assert "earlier" in prompt and record.response_b in prompt
    assert "<final_verdict>Correct OR Incorrect</final_verdict>" in prompt


def test_templates_can_be_overridden_by_path(sample_records, tmp_path, monkeypatch):
    custom = tmp_path / "my_genrm.jinja"
    custom.write_text('CUSTOM {{ prompt }}\n{% include "_comparison.jinja" %}', encoding="utf-8")
    record = sample_records[0]
    prompt = render_genrm_prompt(record, str(custom))
    assert prompt.startswith(f"CUSTOM {record.prompt}")
    assert "[Assistant B's answer]" in prompt

    judge = tmp_path / "judge.jinja"
    judge.write_text("J {{ golden_rationale }} / {{ genrm_output }}", encoding="utf-8")
    # The environment reaches the prompt through the judge's settings, read once.
    monkeypatch.setenv("RALIGN_METAJUDGE_TEMPLATE", str(judge))
    template = FIDELITY.judge_template(resolve_judge({}))
    assert render_metajudge_prompt(record, "<think>t</think>out", template) == (
        f"J {record.golden_rationale} / out"
    )


def test_missing_template_is_a_clear_error(sample_records, tmp_path):
    with pytest.raises(FileNotFoundError, match="prompt template not found"):
        render_genrm_prompt(sample_records[0], str(tmp_path / "nope.jinja"))


@pytest.mark.parametrize("options", [{}, {"swap": True}, {"samples": 3}])
def test_judge_slots_name_exactly_the_prompts_that_are_sent(sample_records, options):
    from ralign_tasks.protocols.base import GenRMOutput

    count = 2 if options.get("swap") else options.get("samples", 1)
    texts = ["\\boxed{A}", "\\boxed{B}", None, "no verdict"]
    for index, record in enumerate(sample_records):
        outputs = [GenRMOutput(texts[(index + k) % 4]) for k in range(count)]
        judgment = FIDELITY.judgment(record, outputs, options)
        sent = [prompt is not None for prompt in FIDELITY.judge_prompts(judgment)]
        assert FIDELITY.judge_slots(judgment) == sent
        assert len(sent) == count
