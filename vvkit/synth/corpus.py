"""The tiny offline policy's tokenizer corpus: every prompt template and the whole toy-world vocabulary, so the
locally trained tokenizer has one token per task word. It lives with the toy world (whose words it lists), not with
the prompts, so `vvkit.prompts` stays free of the toy world."""
from __future__ import annotations

from vvkit.prompts import (CAPTION_PROMPT, DARK_EVENT_PROMPT, INSTRUCTION, MCQ_TEMPLATE, MIXVID_ORDERS, QUESTIONS,
                           format_options, mixvid_problem)


def tokenizer_corpus() -> list[str]:
    """Every template and the whole toy-world vocabulary in sentences, so a tiny tokenizer learns one token per
    task word (a tiny BPE would otherwise split colour and shape names into pieces the policy must learn to join)."""
    from vvkit.synth.toyworld import COLOURS, DIRECTIONS, NUMBERS, SHAPES, SIDES, dense_caption, vocabulary_sentences

    events = vocabulary_sentences()
    out = [INSTRUCTION, CAPTION_PROMPT, DARK_EVENT_PROMPT]
    descs = [f"the {c} {s}" for c in COLOURS for s in SHAPES]
    for family, (open_q, mcq_q) in QUESTIONS.items():
        for q in dict.fromkeys((open_q, mcq_q)):  # not a set: its order changes with PYTHONHASHSEED
            if "{desc}" in q:
                out += [q.format(desc=d) for d in descs]
            elif "{event}" in q:
                out += [q.format(event=e[0].lower() + e[1:-1]) for e in events[::7]]
            else:
                out.append(q)
    out += [mixvid_problem(QUESTIONS["colour"][0], o) for o in MIXVID_ORDERS]
    out += events
    out += [dense_caption(events[i:i + 4]) for i in range(0, len(events), 4)]
    words = list(COLOURS) + list(SHAPES) + list(SIDES) + list(DIRECTIONS) + list(NUMBERS)
    letters = ["A", "B", "C", "D"]
    out += ["Options:\n" + format_options([f"{l}. {w}" for l, w in zip(letters, words[i:i + 4])])
            for i in range(0, len(words) - 3)]
    out += [f"<think> the shape is {c} </think><answer> {l} </answer>" for c in COLOURS for l in letters]
    out += [f"<think>the shape is {w}</think><answer>{w}</answer>" for w in words]
    out += [MCQ_TEMPLATE.format(question=QUESTIONS["colour"][1], options=format_options(
        [f"{l}. {c}" for l, c in zip(letters, list(COLOURS)[i:i + 4])])) for i in range(3)]
    return list(dict.fromkeys(out))  # unique, order kept
