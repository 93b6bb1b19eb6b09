"""Data synthesis on tiny generated videos whose ground truth is known by construction: the toy world draws what
its captions say, questions have one right option, DarkEventInfer blacks out exactly the event, MixVidQA frames
come from the right clip at the right time, annotation readers parse each format, build_dataset caches."""
import json
import math

import numpy as np
import pytest

from vvkit.schema import load_rows, option_letter, option_text
from vvkit.synth import questions as Q
from vvkit.synth.adapters import AnnotatedVideo, AnnotationError, Event, read_annotations
from vvkit.synth.dark_event import DarkEventSettings, eligible_events, make_dark_event_row
from vvkit.synth.mixvid import MixVidSettings, interleave_chunks, make_mixvid_row
from vvkit.synth.toyrender import render
from vvkit.synth.toyworld import COLOURS, DIRECTIONS, SIDES, generate, state_at

SIZE, FPS = 56, 8.0



def edited_timeline(chunks: list[list]) -> list[tuple[float, float, int, float]]:
    """(edited_start, edited_end, source_idx, source_start) per chunk: where each chunk lands in the mixed video."""
    out, t = [], 0.0
    for src, s, e in chunks:
        out.append((t, t + (e - s), int(src), s))
        t += e - s
    return out


def _toy(seed, difficulty="full", **kw):
    return generate(seed, difficulty, size=kw.get("size", 112), fps=FPS, min_duration=kw.get("lo", 6.0),
                    max_duration=kw.get("hi", 9.0), texture=True)


# ---------------------------------------------------------------- toy world


def test_same_seed_same_video_and_ground_truth():
    a, b, c = _toy(7), _toy(7), _toy(8)
    assert a == b and np.array_equal(render(a), render(b))
    assert a.events != c.events


def _mask(frame, colour):
    return np.all(frame == np.array(COLOURS[colour], np.uint8), axis=-1)


def _centroid(m):
    ys, xs = np.nonzero(m)
    return np.array([xs.mean(), ys.mean()])


def _kind_signature(frame, k, kind):
    """Pixels at fixed offsets from the scripted centre tell the four shapes apart (angle 0, as they enter)."""
    def inside(dx, dy):
        return bool(_mask(frame, k.colour)[int(k.y + dy * k.size), int(k.x + dx * k.size)])
    side, corner, diag, apex = inside(0.85, 0), inside(0.85, 0.85), inside(0.55, 0.55), inside(0, -0.85)
    return {"square": side and corner, "circle": side and not corner and diag, "cross": side and not diag,
            "triangle": not side and apex}[kind]


@pytest.mark.parametrize("seed", range(12))
def test_every_caption_matches_the_pixels(seed):
    v = _toy(seed, "simple" if seed % 4 == 0 else "full")
    frames = render(v)
    fi = lambda t: int(round(t * v.fps))  # noqa: E731  (event bounds are on frame times)
    for e in v.events:
        words = e.caption.rstrip(".").lower().split()
        i0, i1 = fi(e.start), fi(e.end) - 1  # last frame inside the event
        im = (i0 + i1) // 2
        actor = e.actors[0]
        k0, k1 = state_at(v.keys[actor], e.start), state_at(v.keys[actor], i1 / v.fps)
        named = [w for w in words if w in COLOURS]
        assert v.kinds[actor] in words and named[0] in (k0.colour, k1.colour)
        m0, m1 = _mask(frames[i0], named[0]), _mask(frames[i1], named[-1] if e.kind == "turns" else named[0])
        # the scripted centre shows the named colour while the shape is on screen
        km = state_at(v.keys[actor], im / v.fps)
        if 0 <= km.x < v.size and 0 <= km.y < v.size and e.kind != "turns":
            assert _mask(frames[im], km.colour)[int(km.y), int(km.x)], e.caption
        if e.kind == "enters":
            side = words[words.index("the") + 1]
            assert side in SIDES and m0.sum() == 0 and m1.sum() > 0
            assert _kind_signature(frames[fi(e.end)], state_at(v.keys[actor], e.end), v.kinds[actor])
            d = _centroid(m1) - _centroid(_mask(frames[im], named[0]))
            assert {"left": d[0] > 0, "right": d[0] < 0, "top": d[1] > 0, "bottom": d[1] < 0}[side], e.caption
        elif e.kind == "moves":
            d = _centroid(m1) - _centroid(m0)
            want = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}[words[-1]]
            assert words[-1] in DIRECTIONS and np.dot(d, want) > 4, e.caption
        elif e.kind == "turns":
            assert _mask(frames[i0], named[0])[int(k0.y), int(k0.x)]
            assert _mask(frames[i1], named[-1])[int(k1.y), int(k1.x)] and named[0] != named[-1]
        elif e.kind in ("grows", "shrinks"):
            ratio = m1.sum() / m0.sum()
            assert ratio > 1.5 if e.kind == "grows" else ratio < 0.7, e.caption
        elif e.kind == "rotates":
            c0, c1 = _centroid(m0).round().astype(int), _centroid(m1).round().astype(int)
            a, b = np.roll(m0, -c0[1] + 20, 0)[:40], np.roll(m1, -c1[1] + 20, 0)[:40]
            a, b = np.roll(a, -c0[0] + 20, 1)[:, :40], np.roll(b, -c1[0] + 20, 1)[:, :40]
            assert (a & b).sum() / (a | b).sum() < 0.9, e.caption
        elif e.kind == "bounces":
            edge = words[-2]
            mid = _centroid(_mask(frames[fi((e.start + e.end) / 2)], named[0]))
            axis, sign = {"left": (0, -1), "right": (0, 1), "top": (1, -1), "bottom": (1, 1)}[edge]
            assert sign * (mid[axis] - _centroid(m0)[axis]) > 4
            assert np.abs(_centroid(_mask(frames[fi(e.end)], named[0])) - _centroid(m0)).max() < 1.5
        elif e.kind == "leaves":
            assert m0.sum() > 0 and _mask(frames[fi(e.end)], named[0]).sum() == 0
        elif e.kind == "collides":
            other = _mask(frames[i0], named[1]), _mask(frames[i1], named[1])
            assert other[0].sum() > 0 and other[1].sum() > 0
            assert np.linalg.norm(_centroid(m1) - _centroid(other[1])) < np.linalg.norm(
                _centroid(m0) - _centroid(other[0])) - 5


@pytest.mark.parametrize("difficulty", ["simple", "full"])
def test_mcq_answer_among_options_and_unique(difficulty):
    rng = np.random.default_rng(0)
    letters = []
    for seed in range(20):
        v = _toy(seed, difficulty)
        for qa in Q.toy_qa(v, pool=["The red circle grows.", "The blue square shrinks.", "A green cross rotates."]):
            if len(qa.distractors) < 3:
                continue
            question, options, letter = Q.to_mcq(qa, rng)
            texts = [option_text(o) for o in options]
            assert [option_letter(o) for o in options] == ["A", "B", "C", "D"]
            assert texts.count(qa.answer) == 1 and len(set(texts)) == 4
            assert options["ABCD".index(letter)] == f"{letter}. {qa.answer}"
            letters.append(letter)
    assert set(letters) == set("ABCD")
    if difficulty == "simple":  # the learnable family: one shape, its colour, a one-word answer
        assert all(q.family in ("colour", "shape", "first_event", "after", "before", "count", "enter_side",
                                "direction") for q in Q.toy_qa(_toy(1, "simple")))
        qa = Q.pick(Q.toy_qa(_toy(1, "simple")), Q.DEFAULT_FAMILIES["simple"], rng)
        assert qa.family == "colour" and qa.answer in COLOURS and len(_toy(1, "simple").kinds) == 1


def test_order_questions_follow_the_script():
    v = _toy(3, hi=12.0)
    caps = [Q.phrase(e.caption) for e in v.events]
    for qa in Q.toy_qa(v):
        if qa.family == "after":
            ref = qa.question[len("What happens right after "):-1]
            assert caps[caps.index(ref) + 1] == qa.answer
        if qa.family == "before":
            ref = qa.question[len("What happens right before "):-1]
            assert caps[caps.index(ref) - 1] == qa.answer
        if qa.family == "first_event" and qa.distractors:
            assert min(caps.index(c) for c in [qa.answer] + qa.distractors) == caps.index(qa.answer)


# ---------------------------------------------------------------- annotation readers


def _touch_videos(root, ids):
    root.mkdir(exist_ok=True)
    for i in ids:
        (root / f"{i}.mp4").write_bytes(b"")


def test_adapters_parse_each_format(tmp_path):
    vids = tmp_path / "videos"
    _touch_videos(vids, ["c1", "v_an1", "yc1"])
    coin = {"database": {"c1": {"duration": 30.0, "subset": "training", "annotation": [
        {"segment": [12.0, 18.0], "label": "season the fish"}, {"segment": [2.0, 8.0], "label": "cut the fish"}]}}}
    anet = {"an1": {"duration": 20.0, "timestamps": [[0.0, 5.0], [6.0, 12.5]],
                    "sentences": ["A man walks in.", " He sits down. "]}}
    yc = {"database": {"yc1": {"duration": 40.0, "subset": "validation", "annotations": [
        {"segment": [5, 15], "sentence": "add oil to a pan"}]}}}
    for name, data in [("coin.json", coin), ("anet.json", anet), ("yc.json", yc)]:
        (tmp_path / name).write_text(json.dumps(data))
    c, = read_annotations(tmp_path / "coin.json", "coin", vids)
    assert c.id == "c1" and c.duration == 30.0 and c.path.endswith("c1.mp4")
    assert [(e.start, e.end, e.caption) for e in c.events] == [(2.0, 8.0, "cut the fish"), (12.0, 18.0, "season the fish")]
    a, = read_annotations(tmp_path / "anet.json", "activitynet", vids)  # finds v_an1.mp4 for id an1
    assert a.path.endswith("v_an1.mp4") and [e.caption for e in a.events] == ["A man walks in.", "He sits down."]
    y, = read_annotations(tmp_path / "yc.json", "youcook2", vids)
    assert y.events == [Event(5.0, 15.0, "add oil to a pan")] and y.meta["subset"] == "validation"


def test_adapter_errors_name_the_problem(tmp_path):
    vids = tmp_path / "videos"
    _touch_videos(vids, ["an1"])
    (tmp_path / "missing.json").write_text(json.dumps({"zz": {"duration": 9, "timestamps": [[0, 1]], "sentences": ["x"]}}))
    with pytest.raises(AnnotationError, match=r"video 'zz' not found under .*videos"):
        read_annotations(tmp_path / "missing.json", "activitynet", vids)
    (tmp_path / "bad.json").write_text(json.dumps({"an1": {"duration": 9, "timestamps": [[0, 1]], "sentences": []}}))
    with pytest.raises(AnnotationError, match=r"bad.json: an1: 1 timestamps but 0 sentences"):
        read_annotations(tmp_path / "bad.json", "activitynet", vids)
    (tmp_path / "seg.json").write_text(json.dumps({"database": {"an1": {"duration": 9, "annotation": [
        {"segment": [3, 2], "label": "x"}]}}}))
    with pytest.raises(AnnotationError, match=r"database.an1.annotation\[0\]: segment \[3, 2\]"):
        read_annotations(tmp_path / "seg.json", "coin", vids)
    with pytest.raises(AnnotationError, match="unknown annotation format"):
        read_annotations(tmp_path / "seg.json", "kinetics", vids)


# ---------------------------------------------------------------- DarkEventInfer


def _policy(**kw):
    from vvkit.video import FramePolicy

    return FramePolicy(**{"fps": 4.0, "min_pixels": 28 * 28, "max_pixels": SIZE * SIZE, "backend": "pyav",
                          "timeout_s": 0, **kw})


def _written(tmp_path, seed, name, background=None):
    import dataclasses

    from vvkit.video import write_video

    v = generate(seed, "full", size=SIZE, fps=FPS, min_duration=6.0, max_duration=8.0)
    if background is not None:
        v = dataclasses.replace(v, background=background, texture=False)
    frames = render(v)
    path = write_video(frames, tmp_path / f"{name}.mp4", FPS)
    return v, frames, v.to_annotated(str(path), name)


def test_dark_event_choice_respects_bounds_and_is_seedable():
    s = DarkEventSettings(min_event_s=1.0, max_share=0.3, min_context_s=1.0)
    for seed in range(15):
        av = _toy(seed).to_annotated("x.mp4", f"v{seed}")
        ok = eligible_events(av, s)
        for k in ok:
            e = av.events[k]
            assert e.start >= 1.0 and av.duration - e.end >= 1.0 and 1.0 <= e.end - e.start <= 0.3 * av.duration
            assert e.kind != "bounces"
        r1 = make_dark_event_row(av, np.random.default_rng(seed), s, "a")
        r2 = make_dark_event_row(av, np.random.default_rng(seed), s, "a")
        assert r1 == r2 and (r1 is None) == (not ok)
        if r1:
            k = r1.meta["event_index"]
            assert r1.edits == {"mask": [[av.events[k].start, av.events[k].end]]} and r1.solution == av.events[k].caption
            assert k in ok  # so it has >= 1 s of visible video on both sides (asserted above)


def test_dark_event_frames_black_inside_untouched_outside(tmp_path):
    from vvkit.video import read_video

    v, frames, av = _written(tmp_path, 5, "dark")
    row = make_dark_event_row(av, np.random.default_rng(0), DarkEventSettings(min_context_s=0.5), "d")
    assert row is not None
    (s, e), = row.edits["mask"]
    pol = _policy(fps=FPS)  # every frame
    plain, dark = read_video(row.video, pol), read_video(row.video, pol, edits=row.edits)
    inside = (dark.timestamps >= s) & (dark.timestamps < e)
    assert inside.any() and (~inside).any() and np.array_equal(plain.timestamps, dark.timestamps)
    assert (dark.frames[inside] == 0).all()
    assert np.array_equal(dark.frames[~inside], plain.frames[~inside])
    assert plain.frames[inside].mean() > 20  # there was something to hide
    idx = np.round(plain.timestamps[~inside] * FPS).astype(int)
    assert np.abs(plain.frames[~inside].astype(int) - frames[idx]).mean() < 6  # outside = the rendered video


# ---------------------------------------------------------------- MixVidQA


def test_interleave_chunks_bounds_and_alternation():
    s = MixVidSettings()
    for seed in range(30):
        rng = np.random.default_rng(seed)
        step = 0.125 if seed % 2 else None
        chunks = interleave_chunks((rng.uniform(6, 12), rng.uniform(6, 12)), rng, s, step)
        assert len(chunks) >= 4
        assert all(1.5 - 1e-9 <= c[2] - c[1] <= 2.0 + 1e-9 for c in chunks)
        assert all(a[0] != b[0] for a, b in zip(chunks, chunks[1:]))  # A B A B ...
        for src in (0, 1):
            mine = [c for c in chunks if c[0] == src]
            assert mine[0][1] == 0.0 and all(math.isclose(a[2], b[1]) for a, b in zip(mine, mine[1:]))
        if step:
            assert all(math.isclose(round(c[2] / step) * step, c[2]) for c in chunks)
    firsts = {interleave_chunks((8, 8), np.random.default_rng(k), s)[0][0] for k in range(20)}
    assert firsts == {0, 1}  # which clip starts is random


def _mixvid_row(tmp_path):
    va, fa, a = _written(tmp_path, 11, "a", background=(90, 90, 90))
    vb, fb, b = _written(tmp_path, 12, "b", background=(150, 130, 110))
    row = None
    for k in range(10):
        row = make_mixvid_row(a, b, lambda u: Q.toy_qa(va, u), lambda u: Q.toy_qa(vb, u), np.random.default_rng(k),
                              MixVidSettings(), "m", Q.DEFAULT_FAMILIES["full"], step=1 / FPS)
        if row is not None:
            break
    return row, (fa, fb)


def test_mixvid_question_frames_and_materialize(tmp_path):
    from vvkit.synth.build import materialize_row
    from vvkit.video import read_video

    row, rendered = _mixvid_row(tmp_path)
    assert row is not None and row.video == [str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4")]
    asked = row.meta["asked_source"]
    assert row.meta["asked_order"] == ("first" if row.edits["interleave"][0][0] == asked else "second")
    assert f"clip shown {row.meta['asked_order']}" in row.problem and row.meta["other_answer"] != row.solution
    clip = read_video(row.video, _policy(fps=FPS), edits=row.edits)
    timeline = edited_timeline(row.edits["interleave"])
    assert math.isclose(clip.duration, timeline[-1][1], abs_tol=1e-6)
    for frame, t, src in zip(clip.frames, clip.timestamps, clip.sources):
        t0, t1, want, s0 = next(c for c in timeline if c[0] <= t + 1e-9 < c[1])
        assert src == want
        assert np.abs(frame[1, 1].astype(int) - ((90, 90, 90), (150, 130, 110))[want]).max() < 12  # background
        expect = int(round((s0 + t - t0) * FPS))
        diffs = [np.abs(frame.astype(int) - rendered[want][j]).mean() for j in range(len(rendered[want]))]
        near = min(diffs[max(0, expect - 1):expect + 2])  # the scripted frame (+-1) matches as well as any frame
        assert near - min(diffs) < 0.5 and near < 6
    out = materialize_row(row, str(tmp_path / "mixed.mp4"))
    mat = read_video(str(out), _policy(fps=FPS))
    n = min(len(mat.frames), len(clip.frames))
    assert abs(len(mat.frames) - len(clip.frames)) <= 1
    assert np.abs(mat.frames[:n].astype(int) - clip.frames[:n].astype(int)).mean() < 6


# ---------------------------------------------------------------- build_dataset


def test_build_dataset_splits_counts_and_cache(tmp_path):
    from vvkit.config import SynthConfig
    from vvkit.synth import build_dataset

    cfg = SynthConfig(run_dir=str(tmp_path), seed=3, num_videos=6, test_fraction=0.34, size=SIZE, min_duration=6.0,
                      max_duration=8.0, samples_per_video=3,
                      task_mix={"mcq": 1, "open_ended": 1, "caption": 1, "dark_event": 1, "mixvid": 1})
    summary = build_dataset(cfg)
    assert not summary["cached"] and summary["videos"] == {"train": 4, "test": 2}
    rows = {s: load_rows(tmp_path / "data" / f"{s}.jsonl") for s in ("train", "test")}
    assert sum(summary["counts"]["train"].values()) == len(rows["train"]) == 12
    assert {r.problem_type for r in rows["train"]} >= {"mcq", "caption"}
    used = {s: {p for r in rs for p in r.paths} for s, rs in rows.items()}
    assert used["train"] and used["test"] and not used["train"] & used["test"]  # disjoint source videos
    assert all(r.split == s for s, rs in rows.items() for r in rs)
    again = build_dataset(cfg)
    assert again["cached"] and again["counts"] == summary["counts"]
    mtime = (tmp_path / "data" / "train.jsonl").stat().st_mtime_ns
    cfg.seed = 4
    assert not build_dataset(cfg)["cached"] and (tmp_path / "data" / "train.jsonl").stat().st_mtime_ns != mtime


def test_build_dataset_from_an_annotation_file(tmp_path):
    from vvkit.config import SynthConfig
    from vvkit.synth import build_dataset

    db = {}
    (tmp_path / "videos").mkdir()
    for i in range(4):
        v, _, _ = _written(tmp_path / "videos", i, f"c{i}")
        db[f"c{i}"] = {"duration": v.duration, "subset": "training",
                       "annotation": [{"segment": [e.start, e.end], "label": e.caption} for e in v.events]}
    (tmp_path / "coin.json").write_text(json.dumps({"database": db}))
    cfg = SynthConfig(run_dir=str(tmp_path), source=str(tmp_path / "coin.json"), annotation_format="coin",
                      video_root=str(tmp_path / "videos"), test_fraction=0.25, samples_per_video=4,
                      task_mix={"mcq": 1, "caption": 1, "dark_event": 1, "mixvid": 1})
    summary = build_dataset(cfg)
    rows = load_rows(tmp_path / "data" / "train.jsonl")
    assert summary["videos"] == {"train": 3, "test": 1} and len(rows) == 12
    assert all(r.source == "coin" and all(p.startswith(str(tmp_path / "videos")) for p in r.paths) for r in rows)
    assert {r.meta.get("family") for r in rows if r.problem_type == "mcq"} <= set(Q.EVENT_FAMILIES)
    with pytest.raises(ValueError, match="annotation_format"):
        build_dataset(SynthConfig(run_dir=str(tmp_path), source=str(tmp_path / "coin.json")))


def test_build_dataset_prints_what_the_reader_skipped(tmp_path, capsys):
    from vvkit.config import SynthConfig
    from vvkit.synth import build_dataset

    (tmp_path / "videos").mkdir()
    v, _, _ = _written(tmp_path / "videos", 0, "c0")
    anns = [{"segment": [e.start, e.end], "label": e.caption} for e in v.events]
    db = {"c0": {"duration": v.duration, "subset": "training", "annotation": anns + [{"segment": [2.0, 2.0],
                                                                                      "label": "zero length"}]},
          "gone1": {"duration": 5.0, "subset": "training", "annotation": anns[:1]},
          "gone2": {"duration": 5.0, "subset": "training", "annotation": anns[:1]}}
    (tmp_path / "coin.json").write_text(json.dumps({"database": db}))
    cfg = SynthConfig(run_dir=str(tmp_path), source=str(tmp_path / "coin.json"), annotation_format="coin",
                      video_root=str(tmp_path / "videos"), test_fraction=0.0, task_mix={"caption": 1})
    line = ("[vvkit] skipped 3 records: 2 missing video, 1 zero-length segment "
            f"(see {tmp_path / 'data' / 'manifest.json'})")
    assert not build_dataset(cfg)["cached"]
    assert line in capsys.readouterr().out.splitlines()
    assert build_dataset(cfg)["cached"]  # the cached summary says it again
    assert line in capsys.readouterr().out.splitlines()
    toy = SynthConfig(run_dir=str(tmp_path / "toy"), num_videos=2, size=SIZE, task_mix={"caption": 1})
    build_dataset(toy)
    assert "[vvkit] skipped" not in capsys.readouterr().out  # nothing skipped: nothing said


def test_tasks_are_drawn_from_the_schema_vocabulary():
    from vvkit.schema import HEADLINE_METRIC, TASKS
    from vvkit.synth.build import DRAW_ORDER

    assert sorted(DRAW_ORDER) == sorted(TASKS) == sorted(HEADLINE_METRIC)
