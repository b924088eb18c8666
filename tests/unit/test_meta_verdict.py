import pytest

from ralign_tasks.scorers.fidelity import MetaStatus, parse_meta_verdict

C, INC, PF = MetaStatus.CORRECT, MetaStatus.INCORRECT, MetaStatus.PARSE_FAIL


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("<genrm_analysis>ok</genrm_analysis>\n<final_verdict>Correct</final_verdict>", C),
        ("<genrm_analysis>x</genrm_analysis><final_verdict>Incorrect</final_verdict>", INC),
        # Lower case and surrounding spaces are fine: only the stripped lower-case text counts.
        ("<genrm_analysis>x</genrm_analysis><final_verdict>  correct \n</final_verdict>", C),
        ("<genrm_analysis>x</genrm_analysis><final_verdict>CORRECT</final_verdict>", C),
        # Decorated verdicts are not exactly "correct": Incorrect, as in the official scripts.
        ("<genrm_analysis>x</genrm_analysis><final_verdict>**Correct**</final_verdict>", INC),
        ("<genrm_analysis>x</genrm_analysis><final_verdict>Correct.</final_verdict>", INC),
        (
            "<genrm_analysis>x</genrm_analysis><final_verdict>Correct OR Incorrect</final_verdict>",
            INC,
        ),
        # Unclosed verdict tag: the rest of the text is the verdict.
        ("<genrm_analysis>x</genrm_analysis><final_verdict> Correct ", C),
        ("<genrm_analysis>x</genrm_analysis><final_verdict>Correct\nbecause", INC),
        # First verdict tag wins.
        (
            "<genrm_analysis>x</genrm_analysis><final_verdict>Incorrect</final_verdict>"
            "<final_verdict>Correct</final_verdict>",
            INC,
        ),
        # Missing tags: ParseFail.
        ("<final_verdict>Correct</final_verdict>", PF),
        ("<genrm_analysis>x</genrm_analysis> Verdict: Correct", PF),
        ("Correct", PF),
        ("<genrm_analysis>x</genrm_analysis><Final_Verdict>Correct</Final_Verdict>", PF),
    ],
)
def test_parse_meta_verdict(answer, expected):
    assert parse_meta_verdict(answer) is expected
