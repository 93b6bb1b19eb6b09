"""vvkit.rewards.parsing.mcq_choice on literal outputs (each rule in order, and the ambiguous cases), free_answer,
and evaluation's reading through score_rows while the reward keeps its strict format gate."""
import pytest

import vvkit.rewards.scorer as S
import vvkit.rewards.tasks as T
from vvkit.rewards.parsing import answer_parts, free_answer, mcq_choice

O4 = ["A. red square", "B. blue circle", "C. green triangle", "D. yellow star"]
O5 = O4 + ["E. purple cube"]

CASES = [  # (output, options, letter or None, what it checks)
    # one bare letter
    ("B", O4, "B", "bare letter"),
    ("(B)", O4, "B", "bracketed letter"),
    ("[C]", O4, "C", "square brackets"),
    ("B.", O4, "B", "letter and full stop"),
    ("D)", O4, "D", "letter and bracket"),
    ("b", O4, "B", "lowercase letter"),
    ("**B**", O4, "B", "markdown emphasis"),
    ("`C`", O4, "C", "inline code"),
    ("\uff22", O4, "B", "full-width letter (NFKC)"),
    ("B\u200b", O4, "B", "zero-width space"),
    ("  \n B \n", O4, "B", "whitespace"),
    ("E", O5, "E", "fifth option"),
    ("E", O4, None, "a letter that is not an option"),
    # reasoning and answer tags
    ("<think>it could be A</think>\nB", O4, "B", "untagged answer after reasoning"),
    ("<THINK>A?</THINK><ANSWER>c</ANSWER>", O4, "C", "tags in any case"),
    ("<think>A</think><answer>B</answer>", O4, "B", "the tagged answer"),
    ("<answer>B", O4, "B", "unclosed answer read to the end"),
    ("<answer>A</answer><answer>A</answer>", O4, "A", "agreeing answer blocks"),
    ("<answer>A</answer> then <answer>B</answer>", O4, None, "disagreeing answer blocks"),
    ("<think>the answer is B</think>", O4, None, "a letter only inside the reasoning"),
    ("<think>B</think><answer></answer> B", O4, None, "an empty answer block with a letter elsewhere"),
    ("<think>never closed, so B", O4, None, "unclosed think dropped to the end"),
    ("B is tempting </think> C", O4, "C", "only what follows a stray </think>"),
    ("x </think> A </think> D", O4, "D", "after the last stray </think>"),
    # leading forms
    ("B. blue circle", O4, "B", "leading letter and its text"),
    ("B) red square", O4, "B", "leading form wins over a contradicting text"),
    ("(B) red square", O4, "B", "bracketed leading form wins too"),
    ("C: because it is green", O4, "C", "leading letter and colon"),
    # answer phrases
    ("The answer is B", O4, "B", "answer phrase"),
    ("Answer: C", O4, "C", "answer and colon"),
    ("The best option is (D).", O4, "D", "option phrase with brackets"),
    ("My choice: a.", O4, "A", "lowercase letter before punctuation"),
    ("the answer is b", O4, "B", "lowercase letter at the end"),
    ("The answer is a cube", O4, None, "lowercase article after the phrase is no letter"),
    ("The answer is B, not A", O4, "B", "the phrase decides over other letters"),
    ("Answer: A. No wait, the answer is B.", O4, None, "different letters in several phrases"),
    ("A man walks in. The answer is C.", O4, "C", "phrase after an article"),
    # the text equal to an option's text
    ("blue circle", O4, "B", "option text alone"),
    ("Green Triangle.", O4, "C", "option text, case and full stop"),
    # one standalone capital letter
    ("I would pick D here", O4, "D", "one standalone capital"),
    ("A person cuts fish, so it is C", O4, "C", "article A is not a letter"),
    ("A or B", O4, None, "two letters with a conjunction"),
    ("A B", O4, None, "two letters"),
    ("Either B or C could be right", O4, None, "two letters in a sentence"),
    # one option text as whole words
    ("It is the yellow star.", O4, "D", "option text inside a sentence"),
    ("red square or blue circle", O4, None, "two option texts"),
    ("a squared circle", O4, None, "no whole-word option text"),
    # no answer
    ("", O4, None, "empty output"),
    ("I cannot tell from the video.", O4, None, "no letter, no option text"),
]


@pytest.mark.parametrize("text,options,expected,why", CASES, ids=[c[3] for c in CASES])
def test_mcq_choice_table(text, options, expected, why):
    assert mcq_choice(text, options) == expected, why


def test_letters_default_without_options_and_chat_completions():
    assert mcq_choice("The answer is F") == "F"  # rows without options allow A-H
    assert mcq_choice([{"role": "assistant", "content": "<think>x</think><answer>(C)</answer>"}], O4) == "C"


def test_answer_parts_and_free_answer():
    assert [p.strip() for p in answer_parts("<think>a</think> plain text")] == ["plain text"]
    assert answer_parts("<answer>x</answer><answer>y") == ["x", "y"]
    assert free_answer("<think>it moves</think>\nThe **red** square moves left.") == "The red square moves left."
    assert free_answer("<think>only reasoning</think>") is None
    assert free_answer("<answer>first</answer><answer>second</answer>") == "second"


ROW = {"solution": "B", "problem_type": "mcq", "options": O4, "problem": "Which shape?", "source": "videomme"}


def test_evaluation_reads_any_output_but_the_reward_keeps_its_gate():
    outs = ["B", "The answer is B", "<think>blue</think><answer>B</answer>", "<think>blue</think>"]
    recs = S.score_rows(outs, [ROW] * 4, {})
    assert [r["choice"] for r in recs] == ["B", "B", "B", None]
    assert [r["score"] for r in recs] == [1.0, 1.0, 1.0, 0.0]
    assert [r["format"] for r in recs] == [0.0, 0.0, 1.0, 0.0]  # format is still the strict verdict
    assert [r["reward"] for r in recs] == [0.0, 0.0, 1.0, 0.0]  # and the gated reward pays format
    tagged = S.score_rows(outs, [ROW] * 4, {}, reading="tagged")
    assert [r["score"] for r in tagged] == [0.0, 0.0, 1.0, 0.0]
    cols = {k: [ROW[k]] * 4 for k in ("solution", "problem_type", "options", "problem")}
    assert T.accuracy_reward(outs, **cols) == [0.0, 0.0, 1.0, 0.0]
    assert T.accuracy_reward(outs, gate="none", **cols) == [0.0, 0.0, 1.0, 0.0]  # untagged earns no accuracy
    assert S.score_completion("B", ROW, {})["score"] == 0.0  # the reward's view unless reading="any"
    assert S.score_completion("B", ROW, {}, reading="any")["score"] == 1.0
    with pytest.raises(ValueError, match="reading"):
        S.score_rows(outs[:1], [ROW], {}, reading="loose")
