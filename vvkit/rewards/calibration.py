"""How the offline judge's thresholds were chosen: toy-world-like references, each with paraphrases that cover it,
answers that cover part of it without error, and wrong answers (other object, other action, opposite direction).

`calibrate()` embeds them (with the lexicon's shortcut off, so the cosines themselves are measured), leaves out the
answers the lexicon rejects, and for each cut picks the threshold with the best accuracy on the two classes it
separates, ties broken by the widest margin. On this set (11 references, 66 answers, all-MiniLM-L6-v2) it gives
2-vs-1 >= 0.67 and 1-vs-0 >= 0.44, both with accuracy 1.0; the lexicon rejects 82% of the wrong answers. The
defaults of `OfflineJudge` round these down (0.6 and 0.4; 0.5 for the binary MixVidQA and entailment cuts, between
the lowest paraphrase at 0.67 and the highest unrejected wrong answer at 0.21). With `lexicon=False` the same fit
gives 0.82 / 0.38 / 0.82 at accuracies 0.77 / 0.68 / 0.78. Notebook 02 reruns this, so a change of embedding model
shows up at once.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from vvkit.rewards.judges import OfflineJudge


@dataclass(frozen=True)
class CalibrationItem:
    """One reference with answers that an LLM judge would grade 2 (full), 1 (partial) and 0 (wrong)."""

    reference: str
    full: tuple[str, ...]
    partial: tuple[str, ...]
    wrong: tuple[str, ...]


CALIBRATION: tuple[CalibrationItem, ...] = (
    CalibrationItem(
        'The red square moves left.',
        full=('The red square slides to the left.', 'A red square travels leftward across the frame.'),
        partial=('The square moves.', 'The red square moves.'),
        wrong=('The red square moves right.', 'The blue circle moves left.', 'The red square grows.'),
    ),
    CalibrationItem(
        'The blue circle bounces off the top edge.',
        full=('The blue circle hits the top edge and bounces back.', 'The blue ball rebounds off the upper edge.'),
        partial=('The blue circle bounces.', 'The circle bounces off an edge.'),
        wrong=(
            'The blue circle bounces off the bottom edge.',
            'The blue circle rotates.',
            'The green circle bounces off the top edge.',
        ),
    ),
    CalibrationItem(
        'The green triangle rotates.',
        full=('The green triangle spins around.', 'The green triangle turns around in place.'),
        partial=('The triangle rotates.', 'The green shape spins.'),
        wrong=('The green triangle turns red.', 'The green triangle moves up.', 'The red square rotates.'),
    ),
    CalibrationItem(
        'The yellow cross grows.',
        full=('The yellow cross gets bigger.', 'The yellow cross expands in size.'),
        partial=('The cross changes size.', 'The yellow shape gets bigger.'),
        wrong=('The yellow cross shrinks.', 'The yellow cross leaves through the top.', 'The white cross grows.'),
    ),
    CalibrationItem(
        'The purple circle leaves through the right.',
        full=('The purple circle exits on the right side.', 'The purple circle moves out of the frame to the right.'),
        partial=('The purple circle leaves.', 'The circle goes away.'),
        wrong=(
            'The purple circle enters from the right.',
            'The purple circle leaves through the left.',
            'A purple square leaves through the right.',
        ),
    ),
    CalibrationItem(
        'A white square enters from the bottom.',
        full=(
            'A white square comes in from the bottom edge.',
            'The white square appears from below, entering at the bottom.',
        ),
        partial=('A white square appears.', 'A square enters.'),
        wrong=(
            'A white square leaves through the bottom.',
            'A white square enters from the top.',
            'A white circle enters from the bottom.',
        ),
    ),
    CalibrationItem(
        'The red circle turns blue.',
        full=('The red circle changes its colour to blue.', 'The red circle becomes blue.'),
        partial=('The circle changes colour.', 'The red circle changes colour.'),
        wrong=('The red circle turns green.', 'The red circle moves left.', 'The red circle shrinks.'),
    ),
    CalibrationItem(
        'The blue triangle and the yellow square collide.',
        full=(
            'The blue triangle hits the yellow square.',
            'The blue triangle and the yellow square bump into each other.',
        ),
        partial=('The triangle touches the square.', 'Two shapes collide.'),
        wrong=(
            'The blue triangle moves away from the yellow square.',
            'The blue triangle and the red circle collide.',
            'The yellow square shrinks.',
        ),
    ),
    CalibrationItem(
        'The green cross shrinks.',
        full=('The green cross gets smaller.', 'The green cross contracts and becomes smaller.'),
        partial=('The cross changes size.', 'The cross gets smaller.'),
        wrong=('The green cross grows.', 'Nothing happens.', 'The screen is black.'),
    ),
    CalibrationItem(
        'The white triangle moves down.',
        full=('The white triangle slides downward.', 'The white triangle travels down the frame.'),
        partial=('The triangle moves.', 'Something white moves.'),
        wrong=('I cannot tell what happened.', 'The camera zooms in on the scene.', 'The video ends here.'),
    ),
    CalibrationItem(
        'The purple square bounces off the left edge.',
        full=(
            'The purple square rebounds from the left edge.',
            'The purple square hits the left wall and bounces back.',
        ),
        partial=('The purple square bounces.', 'The square bounces off a wall.'),
        wrong=('Some shapes are visible on a grey background.', 'The scene stays the same.', 'It is hard to say.'),
    ),
)


def _pairs(items: tuple[CalibrationItem, ...]) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {"full": [], "partial": [], "wrong": []}
    for it in items:
        for kind in out:
            out[kind] += [(a, it.reference) for a in getattr(it, kind)]
    return out


def _best_cut(pos: np.ndarray, neg: np.ndarray) -> tuple[float, float]:
    """Threshold maximising accuracy of `s >= t` for pos vs neg; ties broken by the widest margin."""
    cands = np.unique(np.concatenate([pos, neg]))
    mids = np.concatenate([[cands[0] - 1e-3], (cands[:-1] + cands[1:]) / 2, [cands[-1] + 1e-3]])
    best = (-1.0, -1.0, 0.0)
    for t in mids:
        acc = ((pos >= t).sum() + (neg < t).sum()) / (len(pos) + len(neg))
        margin = min(np.abs(np.concatenate([pos, neg]) - t))
        if (acc, margin) > best[:2]:
            best = (float(acc), float(margin), float(t))
    return best[2], best[0]


def calibrate(judge: OfflineJudge | None = None, items: tuple[CalibrationItem, ...] = CALIBRATION) -> dict:
    """Similarities per class and the thresholds that separate them; answers the lexicon flags are left out of the
    fit (they score 0 whatever the threshold) and their share is reported per class."""
    judge = dataclasses.replace(judge or OfflineJudge(), lexicon_decides=False)  # measure the cosines themselves
    sims, flagged = {}, {}
    for kind, pairs in _pairs(items).items():
        matched = judge.match([a for a, _ in pairs], [r for _, r in pairs])
        # the full/partial cut only matters for answers whose facts are complete; the rest cannot reach 2
        sims[kind] = np.array([best for best, bad, full in matched if not bad and (full or kind == "wrong")])
        flagged[kind] = float(np.mean([bad for _, bad, _ in matched]))
    full_cut, full_acc = _best_cut(sims["full"], sims["partial"])
    partial_cut, partial_acc = _best_cut(np.concatenate([sims["full"], sims["partial"]]), sims["wrong"])
    match_cut, match_acc = _best_cut(sims["full"], sims["wrong"])
    return {
        "dark_full": round(full_cut, 3), "dark_full_accuracy": full_acc,
        "dark_partial": round(partial_cut, 3), "dark_partial_accuracy": partial_acc,
        "mixvid_threshold": round(match_cut, 3), "mixvid_accuracy": match_acc,
        "flagged_by_lexicon": flagged,
        "similarity": {k: [round(float(x), 3) for x in v] for k, v in sims.items()},
    }


def judge_agreement(judge, items: tuple[CalibrationItem, ...] = CALIBRATION) -> dict:
    """Share of calibration answers a judge grades as intended (2 full / 1 partial / 0 wrong; mixvid 1/0/0)."""
    pairs = _pairs(items)
    want = {"full": 2, "partial": 1, "wrong": 0}
    out = {}
    for kind, ps in pairs.items():
        dark = judge.score_dark_event([a for a, _ in ps], [r for _, r in ps])
        mix = judge.score_mixvid([a for a, _ in ps], [r for _, r in ps])
        out[f"dark_event_{kind}"] = float(np.mean([d == want[kind] for d in dark]))
        if kind != "partial":
            out[f"mixvid_{kind}"] = float(np.mean([m == int(kind == "full") for m in mix]))
    return out
