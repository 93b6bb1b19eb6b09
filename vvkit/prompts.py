"""Every prompt template in one place: the Reason-Then-Respond instruction, the per-task texts (captioning,
DarkEventInfer, MixVidQA, multiple choice) and the toy-world questions. The paper's user turn is the question
followed by an instruction to reason in <think> and answer in <answer>, with no system prompt for video (§7); the
wording here is ours and short, because the tiny policy's context is a few hundred tokens.
Bump PROMPT_VERSION whenever a template changes: cached datasets and results record it."""
from __future__ import annotations

from typing import Any

PROMPT_VERSION = "v1"

# ---- the Reason-Then-Respond instruction appended to every task (paper §7, reworded) ----
INSTRUCTION = "Think inside <think> </think>, then give the final answer inside <answer> </answer>."

# ---- per-task texts ----
CAPTION_PROMPT = "Describe this video in detail."  # the paper's caption prompt (§3)
DARK_EVENT_PROMPT = ("A black screen hides one event in this video. From what happens before and after it, "
                     "infer what happened during the black screen.")  # DarkEventInfer (§1)
MIXVID_PROMPT = ("This video alternates between two different clips. Answer only about the clip shown {order}, "
                 "ignoring the other one. {question}")  # MixVidQA (§2); order is "first" or "second"
MCQ_TEMPLATE = "{question}\nOptions:\n{options}\nAnswer with the option letter."
MIXVID_ORDERS = ("first", "second")

# ---- questions: family -> (open-ended form, multiple-choice form); {desc}/{event} are filled by the generator ----
QUESTIONS: dict[str, tuple[str, str]] = {
    "colour": ("What colour is the shape?", "What colour is the shape?"),
    "colour_first": ("What colour is the shape that enters first?", "What colour is the shape that enters first?"),
    "shape": ("What shape is in the video?", "What shape is in the video?"),
    "shape_first": ("What shape enters first?", "What shape enters first?"),
    "count": ("How many shapes appear in the video?", "How many shapes appear in the video?"),
    "enter_side": ("From which side does {desc} enter?", "From which side does {desc} enter?"),
    "direction": ("Which way does {desc} move?", "Which way does {desc} move?"),
    "turn_colour": ("What colour does {desc} turn?", "What colour does {desc} turn?"),
    "first_event": ("What happens first in the video?", "Which of these happens first?"),
    "after": ("What happens right after {event}?", "What happens right after {event}?"),
    "before": ("What happens right before {event}?", "What happens right before {event}?"),
}


def _get(row: Any, key: str) -> Any:
    return row[key] if isinstance(row, dict) else getattr(row, key)


def format_options(options: list[str]) -> str:
    """One option per line, already lettered ('A. red')."""
    return "\n".join(options)


def task_text(row: Any) -> str:
    """The task part of the prompt (question, plus the option list for multiple choice), without the instruction."""
    problem, ptype = _get(row, "problem"), _get(row, "problem_type")
    if ptype == "mcq":
        options = _get(row, "options")
        if not options:
            raise ValueError(f"row {_get(row, 'id')!r}: an mcq row needs options")
        return MCQ_TEMPLATE.format(question=problem, options=format_options(list(options)))
    return problem


def build_prompt(row: Any) -> str:
    """Task text followed by the Reason-Then-Respond instruction (accepts a `Row` or a row dict)."""
    return f"{task_text(row)}\n{INSTRUCTION}"


PROMPT_STYLES = ("reason", "plain", "authors")
# The authors' wording (VidBridge-R1 training script): the raw problem (options written inside it) followed by this
# instruction, with the system turn the stock Qwen2.5-VL chat template inserts when a conversation has none: the
# effective prompt their model saw. vvkit's own template adds no default system prompt, so it is written out here.
AUTHORS_INSTRUCTION = ("\nOutput the thinking process in <think> </think> and final answer in <answer> </answer> tags, "
                       "i.e., <think> reasoning process here </think><answer> answer here </answer>. ")
AUTHORS_SYSTEM = "You are a helpful assistant."
# The plain style: the benchmark's own instruction, as base-model tables are evaluated (Video-MME, MVBench in lmms-eval).
PLAIN_MCQ_INSTRUCTION = "Answer with the option's letter from the given choices directly."


def plain_prompt(row: Any) -> str:
    """The task text with a benchmark-style instruction and no think/answer template (base-model baselines)."""
    text = task_text(row)
    if _get(row, "problem_type") == "mcq":
        return text.replace("\nAnswer with the option letter.", "") + "\n" + PLAIN_MCQ_INSTRUCTION
    return text


def row_to_messages(row: Any, style: str = "reason") -> list[dict]:
    """Chat messages for the processor's template: one user turn, the video first, then the text (paper §7).
    `style="plain"` drops the Reason-Then-Respond instruction (how the paper's baselines are prompted);
    `style="authors"` is the authors' wording and system turn (imported rows keep their problem text in
    `meta["original_problem"]`)."""
    if style not in PROMPT_STYLES:
        raise ValueError(f"prompt style {style!r} unknown; choose one of {PROMPT_STYLES}")
    if style == "authors":
        meta = _get(row, "meta") or {}
        text = (meta.get("original_problem") or task_text(row)) + AUTHORS_INSTRUCTION
        return [{"role": "system", "content": AUTHORS_SYSTEM},
                {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": text}]}]
    text = build_prompt(row) if style == "reason" else plain_prompt(row)
    return [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": text}]}]


def mixvid_problem(question: str, order: str) -> str:
    """The MixVidQA task text asking about the clip shown `order` ('first' or 'second')."""
    if order not in MIXVID_ORDERS:
        raise ValueError(f"order must be one of {MIXVID_ORDERS}, got {order!r}")
    return MIXVID_PROMPT.format(order=order, question=question)
