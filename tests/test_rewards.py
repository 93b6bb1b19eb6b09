"""Rewards on hand-written completions with exact expected values (open-r1 / TRL style), the hacks the playground
probes, the registry's pickling and naming, and a property test that no reward raises or leaves its range."""
import math
import pickle

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vvkit.rewards as R
from vvkit.rewards.events import split_events
from vvkit.rewards.judges import OfflineJudge
from vvkit.rewards.lexicon import contradicts, covers, facts

OPTS = ["A. red", "B. blue", "C. green", "D. yellow"]
DARK_Q = "A black screen hides one event in this video. Infer what happened during the black screen."
CAPTION_REF = ("First, a red square enters from the left. Then, the red square moves up. "
               "Finally, the red square and the blue circle collide.")


def w(think: str, answer: str) -> str:
    return f"<think>{think}</think><answer>{answer}</answer>"


def cols(task: str, solution: str, n: int, options=None, problem: str = "Q?") -> dict:
    return {"solution": [solution] * n, "problem_type": [task] * n, "options": [options] * n, "problem": [problem] * n}


@pytest.fixture(scope="module")
def judge():
    j = OfflineJudge()
    j.embedder.encode(["warm up"])  # load the embedding model once for the module
    return j


# ---- parsing ----

@pytest.mark.parametrize("text,strict,expected", [
    ("<think>a</think><answer>B</answer>", True, ("a", "B", True)),
    ("  <think> a </think>\n<answer> B </answer>\n", True, ("a", "B", True)),
    ("<think>a</think><answer>B</answer> trailing", True, ("a", "B", False)),
    ("<think>a</think><answer>B</answer> trailing", False, ("a", "B", True)),  # the authors' re.match
    ("<think></think><answer>B</answer>", True, (None, "B", False)),
    ("<think>a</think><answer></answer>", True, ("a", "", False)),
    ("<think>a<think>b</think><answer>B</answer>", True, ("a<think>b", "B", False)),
    ("<think>a</think><answer>B", True, ("a", "B", False)),  # unterminated answer is still read
    ("The answer is B", True, (None, None, False)),
])
def test_parse_completion(text, strict, expected):
    p = R.parse_completion(text, strict)
    assert (p.answer, p.well_formed) == expected[1:]
    if expected[0] is not None:
        assert p.think == expected[0]


def test_completion_text_takes_last_assistant_turn():
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": [{"type": "text", "text": w("t", "B")}]}]
    assert R.completion_text(msgs) == w("t", "B")
    assert R.format_reward([msgs, [{"role": "assistant", "content": "B"}]]) == [1.0, 0.0]
    with pytest.raises(TypeError):
        R.completion_text(3)


@pytest.mark.parametrize("answer,expected", [
    ("B", "B"), ("(B)", "B"), ("B.", "B"), ("B) blue", "B"), ("b", "B"), ("The answer is B", "B"),
    ("Option C", "C"), ("\\boxed{D}", "D"), ("**B**", "B"), ("blue", "B"), ("It is Blue.", "B"),
    ("I think B", "B"), ("A red one", "A"), ("the answer is a red one", "A"),
    ("A or B", None), ("A B C D", None), ("A, B, C, D", None), ("red or blue", None), ("E", None),
    ("purple", None), ("", None), (None, None), ("B, not C", None),
])
def test_extract_choice(answer, expected):
    assert R.extract_choice(answer, OPTS) == expected


def test_extract_choice_prefers_the_longest_option_text():
    assert R.extract_choice("the red square", ["A. red", "B. red square"]) == "B"


def test_gt_letter_accepts_bare_and_wrapped_solutions():
    assert [R.gt_letter(s) for s in ["B", "(B)", "B. blue", "<answer>B</answer>", " c "]] == ["B", "B", "B", "B", "C"]
    with pytest.raises(ValueError, match="option letter"):
        R.gt_letter("blue")
    assert R.solution_text("<answer> left </answer>") == "left"


# ---- rule rewards ----

def test_format_reward():
    comps = [w("r", "B"), "B", w("", "B"), w("r", "B") + " extra", "<answer>B</answer>"]
    assert R.format_reward(comps) == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert R.format_reward(comps, strict_format=False) == [1.0, 0.0, 1.0, 1.0, 0.0]


def test_mcq_reward_ungated_and_only_on_mcq_rows():
    comps = [w("r", "B"), w("r", "A"), "<answer>(B)</answer>", w("r", "A or B"), w("r", "left")]
    c = cols("mcq", "B", 5, OPTS)
    c["problem_type"][4], c["options"][4], c["solution"][4] = "open_ended", None, "left"
    assert R.mcq_reward(comps, **c) == [1.0, 0.0, 1.0, 0.0, None]


def test_unknown_problem_type_fails_loudly():
    with pytest.raises(ValueError, match="problem_type 'mcqa'"):
        R.mcq_reward([w("r", "B")], solution=["B"], problem_type=["mcqa"], options=[OPTS])


def test_keywords_whole_words_cap_and_hedges():
    ans = ["First it rolls, then it stops, finally it fades.", "then then then", "After that it stops.",
           "The mayor is authentic.", "It may be red, perhaps.", "", "Then it might stop."]
    got = R.keywords_reward([w("r", a) for a in ans], **cols("caption", "x", len(ans)))
    assert got == pytest.approx([0.4, 0.2, 0.2, 0.0, -0.4, 0.0, -0.2])
    assert R.keywords_reward([w("r", "then")], **cols("mcq", "B", 1, OPTS)) == [None]


def test_rouge_reward():
    comps = [w("r", "the red square moves left"), w("r", "blue circle"), w("r", "left"), "no tags"]
    c = cols("open_ended", "the red square moves left", 4)
    c["solution"][2] = "left"
    assert R.rouge_reward(comps, **c) == pytest.approx([1.0, 0.0, 1.0, 0.0])
    got = R.rouge_reward(comps[:1], solution=["the red square moves right"], rouge_variant="rougeL")
    assert got == [pytest.approx(0.8)]
    with pytest.raises(ValueError, match="rouge variant"):
        R.rouge_score("a", "a", "rougeX")


def test_repetition_reward():
    got = R.repetition_reward(["a b c d e", "x x x x x", "a b"], repetition_ngram=3)
    assert got == pytest.approx([0.0, -2 / 3, 0.0])
    got = R.repetition_reward(["x y x y x y"], repetition_ngram=2, repetition_max_penalty=-0.5)
    assert got == [pytest.approx(-0.3)]


# ---- judged task rewards (offline judge) ----

def test_dark_event_reward(judge):
    ans = ["The red square slides to the left.", "The red square moves.", "The red square grows.",
           "The red square moves right.", "The red square moves left. Or it moves right.", "", DARK_Q]
    c = cols("dark_event", "The red square moves left.", len(ans), problem=DARK_Q)
    assert R.dark_event_reward([w("r", a) for a in ans], judge=judge, **c) == [2.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]


def test_dark_event_answer_naming_only_the_shape_scores_zero(judge):
    """Who is in the dark span is visible before and after it; an answer that names only the shape says nothing of
    what happened there. GRPO found this: answering the colour alone earned 1 of 2 on every DarkEventInfer prompt."""
    ans = ["red", "The red square.", "square", "the red one", "The red square moves.", "The red square moves left.",
           "The red square vanishes."]
    c = cols("dark_event", "The red square moves left.", len(ans), problem=DARK_Q)
    assert R.dark_event_reward([w("r", a) for a in ans], judge=judge, **c) == [0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 0.0]
    # words run together are read as the words they join (an LLM judge reads "whitesquare" as "white square")
    glued = ["the redsquare", "theredsquare", "The redsquare moves left.", "The red square movesleft.",
             "The redt, a red."]  # the last: GRPO at temperature 1.5, once glued words were read
    c = cols("dark_event", "The red square moves left.", len(glued), problem=DARK_Q)
    assert R.dark_event_reward([w("r", a) for a in glued], judge=judge, **c) == [0.0, 0.0, 2.0, 2.0, 0.0]
    turn = cols("dark_event", "The green triangle turns blue.", 3, problem=DARK_Q)
    # "turns" alone is no event the lexicon knows (turns around? turns a colour?): no partial credit
    assert R.dark_event_reward([w("r", a) for a in ("green", "The green triangle turns.", "It turns blue.")],
                               judge=judge, **turn) == [0.0, 0.0, 1.0]


def test_dark_event_answer_with_a_place_the_event_does_not_speak_of_scores_zero(judge):
    """The colour plus a place ("The yellow. Finally, the bottom.") says nothing of an event that is a change of
    colour or a move sideways, yet contradicted nothing the lexicon checks. GRPO from a start that thinks its clip's
    caption found it: the same answer for every DarkEventInfer prompt, 52 of 100 held-out answers scored 1."""
    ans = ["The yellow. Finally, the bottom.", "The yellow cross, at the top.", "The yellow cross changes colour.",
           "The yellow cross turns purple."]
    c = cols("dark_event", "The yellow cross turns purple.", len(ans), problem=DARK_Q)
    assert R.dark_event_reward([w("r", a) for a in ans], judge=judge, **c) == [0.0, 0.0, 1.0, 2.0]
    side = cols("dark_event", "The white square moves right.", 3, problem=DARK_Q)
    assert R.dark_event_reward([w("r", a) for a in ("The white. Finally, the bottom.", "The white square moves.",
                                                    "The white one goes right.")], judge=judge, **side) == [0.0, 1.0, 1.0]
    # a place the event does speak of is about the event: "the bottom" for "moves down"
    down = cols("dark_event", "The white triangle moves down.", 1, problem=DARK_Q)
    assert R.dark_event_reward([w("r", "The white. Finally, the bottom.")], judge=judge, **down) == [1.0]


def test_mixvid_reward(judge):
    ans = ["up", "It moves upward.", "down", "it moves", "The red square moves up."]
    c = cols("mixvid", "up", len(ans), problem="Which way does the blue circle move?")
    assert R.mixvid_reward([w("r", a) for a in ans], judge=judge, **c) == [1.0, 1.0, 0.0, 0.0, 0.0]


def test_open_ended_metrics(judge):
    comps = [w("r", "red"), w("r", "It is red"), w("r", "blue")]
    c = cols("open_ended", "red", 3, problem="What colour is the shape?")
    assert R.open_ended_reward(comps, **c) == pytest.approx([1.0, 0.5, 0.0])
    assert R.open_ended_reward(comps, open_ended_metric="judge", judge=judge, **c) == [1.0, 1.0, 0.0]
    emb = R.open_ended_reward(comps, open_ended_metric="embedding", **c)
    assert emb[0] == pytest.approx(1.0, abs=1e-5) and emb[1] > emb[2]


def test_caption_reward(judge):
    ans = [CAPTION_REF, "A red square enters from the left and moves up.", "A green triangle rotates.",
           "first then next finally", ""]
    got = R.caption_reward([w("r", a) for a in ans], judge=judge, **cols("caption", CAPTION_REF, len(ans)))
    assert got == pytest.approx([1.9, 2 / 3 + 0.5, 0.0, 0.4, 0.0])


def test_autodq_and_event_splitting(judge):
    assert split_events("First a red square enters, then it moves up and grows. After that it stops") == [
        "a red square enters", "a red square moves up", "a red square grows", "a red square stops"]
    assert split_events("The blue circle and the red square collide.") == ["The blue circle and the red square collide"]
    dq = judge.autodq(["A red square enters from the left. The red square moves down."], [CAPTION_REF])[0]
    assert (dq["recall"], dq["precision"]) == (pytest.approx(1 / 3), 0.5)


def test_lexicon():
    assert contradicts("the red square moves right", "the red square moves left")
    assert contradicts("the red square grows", "the red square moves left")
    assert contradicts("the red circle turns green", "the red circle turns blue")
    assert not contradicts("the red square slides leftward", "the red square moves left")
    assert not contradicts("the square changes size", "the square grows")
    assert covers(facts("it moves left"), "the red square moves left", "Which way does the red square move?")
    assert not covers(facts("it moves"), "the red square moves left", "Which way does the red square move?")


def test_offline_judge_calibration_set(judge):
    from vvkit.rewards.calibration import calibrate, judge_agreement

    assert min(judge_agreement(judge).values()) >= 0.9
    cal = calibrate(judge)
    assert cal["dark_partial_accuracy"] == 1.0 and judge.dark_partial <= cal["dark_full"]


# ---- the paper's gated accuracy on a mixed batch ----

MIXED = {
    "solution": ["B", "left", "The red square moves left.", "up", CAPTION_REF],
    "problem_type": ["mcq", "open_ended", "dark_event", "mixvid", "caption"],
    "options": [OPTS, None, None, None, None],
    "problem": ["What colour?", "Which way?", DARK_Q, "Which way does the blue circle move?", "Describe."],
}
GOOD = [w("r", "B"), w("r", "left"), w("r", "The red square moves left."), w("r", "up"), w("r", CAPTION_REF)]
BARE = ["B", "left", "The red square moves left.", "up", CAPTION_REF]  # right answers, no tags


def test_accuracy_gates(judge):
    assert R.accuracy_reward(GOOD, judge=judge, **MIXED) == pytest.approx([1.0, 1.0, 2.0, 1.0, 1.9])
    assert R.accuracy_reward(GOOD, gate="add", judge=judge, **MIXED) == pytest.approx([2.0, 2.0, 3.0, 2.0, 2.9])
    assert R.accuracy_reward(BARE, judge=judge, **MIXED) == [0.0] * 5
    half = ["<answer>B</answer>", "<answer>left</answer>"]  # answer tags but no think: task scores, format 0
    m2 = {k: v[:2] for k, v in MIXED.items()}
    assert R.accuracy_reward(half, gate="add", **m2) == [1.0, 1.0]
    assert R.accuracy_reward(half, gate="none", **m2) == [1.0, 1.0]
    assert R.accuracy_reward(half, gate="multiply", **m2) == [0.0, 0.0]


class SpyJudge:
    """Counts the items it is asked about and fails on demand like HTTPJudge(on_error='count')."""

    def __init__(self, fail: bool = False):
        self.items, self.fail, self.errors = 0, fail, {}

    def _go(self, preds):
        self.items += len(preds)
        if self.fail:
            self.errors["unreachable"] = self.errors.get("unreachable", 0) + len(preds)
            return [None] * len(preds)
        return [1] * len(preds)

    def score_dark_event(self, preds, refs, questions=None):
        return self._go(preds)

    def score_mixvid(self, preds, refs, questions=None):
        return self._go(preds)

    def autodq(self, preds, refs):
        return [None if x is None else {"recall": 1.0, "precision": 1.0, "f1": 1.0} for x in self._go(preds)]

    def pop_errors(self):
        out, self.errors = self.errors, {}
        return out


def test_multiplicative_gate_skips_the_judge_for_malformed_output():
    spy = SpyJudge()
    assert R.accuracy_reward(BARE, judge=spy, **MIXED) == [0.0] * 5
    assert spy.items == 0
    R.accuracy_reward(GOOD, judge=spy, **MIXED)
    assert spy.items == 3  # dark_event, mixvid, caption: one batched call each


def test_judge_failure_gives_none_and_is_logged():
    fn = R.get_reward_funcs(["accuracy"], judge=SpyJudge(fail=True))[0]
    logged = []
    out = fn(GOOD, log_metric=lambda k, v: logged.append((k, v)), **MIXED)
    assert out == [1.0, 1.0, None, None, None]
    assert ("accuracy/judge_unreachable", 3.0) in logged
    assert not any(k == "accuracy/mcq" for k, _ in logged)  # per-task means: logged once, by the trainer
    assert fn.errors == {"unreachable": 3}


def test_length_reward_group_rule():
    done, short = w("look " * 6, "B"), w("x", "B")
    c = cols("mcq", "B", 3, OPTS)
    assert R.length_reward([done, short, w("x", "A")], length_min=5, length_max=10, **c) == [0.2, 0.0, 0.0]
    assert R.length_reward([done, w("x", "A")], length_min=5, length_max=10, **cols("mcq", "B", 2, OPTS)) == [0.0, 0.0]
    assert R.length_reward([done, w("x", "A")], length_min=5, length_max=10, length_min_correct=1,
                           **cols("mcq", "B", 2, OPTS)) == [0.2, 0.0]
    ids = [[1] * 400, [1] * 100, [1] * 400]
    assert R.length_reward([short, short, w("x", "A")], completion_ids=ids, **c) == [0.2, 0.0, 0.0]


def test_score_completion_for_evaluation(judge):
    mcq = R.score_completion(w("r", "(B)"), {"solution": "B", "problem_type": "mcq", "options": OPTS, "problem": "Q"}, {})
    assert {k: mcq[k] for k in ("format", "answer", "choice", "score", "correct", "reward")} == {
        "format": 1.0, "answer": "(B)", "choice": "B", "score": 1.0, "correct": True, "reward": 1.0}
    cap = R.score_completion(CAPTION_REF, {"solution": CAPTION_REF, "problem_type": "caption", "problem": "D"}, {}, judge)
    assert (cap["format"], cap["answer"], cap["score"], cap["reward"]) == (0.0, None, 0.0, 0.0)


# ---- reward hacking probes (the playground's list) ----

def test_reward_hacks(judge):
    from vvkit.rewards.playground import HACKS, reward_table

    fns = R.get_reward_funcs(["format", "accuracy", "keywords", "repetition"], judge=judge)
    table = reward_table(HACKS, fns)
    acc = dict(zip(table.index.get_level_values(1) + "/" + table.index.get_level_values(0), table["accuracy"]))
    assert acc == pytest.approx({
        "answer outside the tags/mcq": 0.0, "empty think/mcq": 0.0, "every option letter/mcq": 0.0,
        "two letters/mcq": 0.0, "keyword stuffing/caption": 0.4, "good caption + stuffing/caption": 1.9,
        "hedging/caption": 1 / 3 + 0.5 * 2 / 3 - 0.6,  # recall 1/3, precision 2/3, three hedges
        "hedged alternatives/dark_event": 0.0,
        "extremely long output/mcq": 1.0, "copy the question/dark_event": 0.0, "copy the question/mixvid": 0.0})
    long_row = table.xs("extremely long output", level=1).iloc[0]
    assert long_row["repetition"] < -0.99


# ---- registry ----

def test_registry_pickles_and_names():
    from trl.trainer.utils import get_callable_name

    fns = R.get_reward_funcs(list(R.REWARDS), gate="add", length_min=1)
    again = pickle.loads(pickle.dumps(fns))
    assert [get_callable_name(f) for f in again] == list(R.REWARDS)
    assert again[0]([w("r", "B")]) == [1.0]
    custom = R.get_reward_funcs(["vvkit.rewards.rule:format_reward"])[0]
    assert custom.__name__ == "format_reward"
    with pytest.raises(KeyError, match="unknown reward 'acc'"):
        R.get_reward_funcs(["acc"])
    with pytest.raises(KeyError, match="gates"):
        R.get_reward_funcs(["format"], gates="add")
    with pytest.raises(ValueError, match="judge_base_url"):
        R.get_reward_funcs(["accuracy"], judge="http")


def test_every_setting_has_one_name():
    """A registry entry passes each setting under its own name: a parameter of the reward function with the
    RewardConfig default (the YAML key = the field = the keyword); the judge goes to the named argument."""
    import inspect

    for name, (fn, keys, judge_arg) in R.REWARDS.items():
        params = inspect.signature(fn).parameters
        assert "caption_judge" not in keys, name  # a setting of the judge factory, not of any reward
        for key in keys:
            assert key in R.DEFAULT_SETTINGS and key in params, (name, key)
            assert params[key].default == R.DEFAULT_SETTINGS[key], (name, key)
        assert judge_arg is None or judge_arg in params, name
        built = R.get_reward_funcs([name], gate="add", strict_format=False)[0]
        assert set(built.settings) == set(keys) | ({judge_arg} - {None}), name
    acc = R.get_reward_funcs(["accuracy"], gate="add", strict_format=False, caption_keywords=False)[0]
    assert [acc.settings[k] for k in ("gate", "strict_format", "caption_keywords")] == ["add", False, False]


def test_reward_config_round_trip():
    from vvkit.config import ConfigError, RewardConfig, from_dict

    cfg = from_dict(RewardConfig, {"reward_funcs": ["format", "accuracy"], "reward_weights": [0.5, 1.0], "gate": "add"})
    assert cfg.settings()["gate"] == "add" and "reward_funcs" not in cfg.settings()
    assert R.DEFAULT_SETTINGS["gate"] == RewardConfig().gate  # one home for every default
    with pytest.raises(ConfigError, match="reward_weights"):
        from_dict(RewardConfig, {"reward_funcs": ["format"], "reward_weights": [1.0, 1.0]})


# ---- property: arbitrary text never raises and stays in range ----

RANGES = {"format": (0, 1), "accuracy": (-0.2 * len(R.HEDGE_PHRASES), 2.0), "mcq": (0, 1), "dark_event": (0, 2),
          "mixvid": (0, 1), "open_ended": (0, 1), "caption": (-0.2 * len(R.HEDGE_PHRASES), 1.9),
          "keywords": (-0.2 * len(R.HEDGE_PHRASES), 0.4), "rouge": (0, 1), "length": (0, 0.2), "repetition": (-1, 0)}
PIECES = st.sampled_from(["<think>", "</think>", "<answer>", "</answer>", "B", "A or B", "then", "might", "left",
                          "the red square moves", " ", "\n", ".", "(C)"])
TEXT = st.lists(st.one_of(PIECES, st.text(max_size=12)), max_size=12).map("".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(TEXT, min_size=5, max_size=5))
def test_no_reward_raises_on_arbitrary_text(judge, texts):
    for fn in R.get_reward_funcs(list(R.REWARDS), judge=judge, length_min=0, length_min_correct=1):
        out = fn(texts, **MIXED)
        lo, hi = RANGES[fn.__name__]
        assert len(out) == 5
        for v in out:
            assert v is None or (lo - 1e-9 <= v <= hi + 1e-9 and not math.isnan(v)), (fn.__name__, v)


FORMED = st.builds(lambda a, b, c, d, e: f"{a}<think>{b}</think>{c}<answer>{d}</answer>{e}",
                   *(st.one_of(st.sampled_from(["", " ", "\n", "<think>", "</answer>", "x"]), TEXT) for _ in range(5)))


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(TEXT, FORMED), strict=st.booleans())
def test_parse_fast_path_agrees_with_the_regular_expressions(text, strict):
    from vvkit.rewards.parsing import _parse_slow

    assert R.parse_completion.__wrapped__(text, strict) == _parse_slow(text, strict)
