"""vvkit.evaluate, vvkit.diagnostics and vvkit.benchmarks: exact metrics per task from scripted answers, resume,
the results header, the four grounding conditions as the generator receives them, the real batched generate on a
micro policy, and the benchmark adapters on small files in each published format (plus named errors for missing
and malformed ones)."""
import json
from pathlib import Path

import numpy as np
import pytest

from vvkit.benchmarks import BenchmarkError, BenchmarkMissing, benchmark_spec, load_benchmark
from vvkit.diagnostics import diagnose, grounding_table
from vvkit.evaluate import CONDITIONS, EvalConfig, evaluate, load_result, policy_dir, summarize
from vvkit.schema import Row
from vvkit.video import FramePolicy, read_video, write_video

FRAMES = {"nframes": 4, "min_pixels": 56 * 56, "max_pixels": 56 * 56, "backend": "pyav", "timeout_s": 0}
OK = "<think>I looked.</think><answer>{}</answer>"


class ExactJudge:
    """A deterministic judge: dark_event 2 exact / 1 same first word / 0; mixvid 1 exact; AutoDQ over sentences."""

    def score_dark_event(self, preds, refs, questions=None):
        return [2 if p == r else int(bool(p) and p.split()[0] == r.split()[0]) for p, r in zip(preds, refs)]

    def score_mixvid(self, preds, refs, questions=None):
        return [int(p == r) for p, r in zip(preds, refs)]

    def autodq(self, preds, refs):
        out = []
        for p, r in zip(preds, refs):
            ep, er = [s for s in (p or "").split(". ") if s], [s for s in r.split(". ") if s]
            rec = sum(e in ep for e in er) / len(er)
            prec = sum(e in er for e in ep) / len(ep) if ep else 0.0
            out.append({"recall": rec, "precision": prec, "f1": 0.0})
        return out


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """An 8-frame 56x56 video whose frames all differ (a permutation of them is detectable)."""
    root = tmp_path_factory.mktemp("clip")
    frames = np.zeros((8, 56, 56, 3), np.uint8)
    for t in range(8):
        frames[t, :, :, 0] = 30 * t
        frames[t, 20:36, 10 + 3 * t:26 + 3 * t] = (0, 200, 90)
    return str(write_video(frames, root / "v.mp4", fps=4))


def toy_rows(video):
    """Rows of every task with scripted answers (row.meta['say']) and known scores."""
    def row(rid, ptype, solution, say, options=None):
        return Row(rid, video, "What happens?", solution, ptype, options, meta={"say": say})

    return [
        row("m1", "mcq", "A", OK.format("A"), ["A. red", "B. blue"]),  # right
        row("m2", "mcq", "B", OK.format("C"), ["A. x", "B. y", "C. z", "D. w"]),  # wrong
        row("m3", "mcq", "A", "A", ["A. red", "B. blue"]),  # no tags: read as A (right), but malformed: reward 0
        row("d1", "dark_event", "the cube falls.", OK.format("the cube falls.")),  # 2
        row("d2", "dark_event", "the cube falls.", OK.format("the ball rolls.")),  # 1 (same first word)
        row("d3", "dark_event", "the cube falls.", OK.format("a ball rolls.")),  # 0
        row("d4", "dark_event", "it spins.", OK.format("it spins.")),  # 2
        row("x1", "mixvid", "left", OK.format("left")),  # 1
        row("x2", "mixvid", "left", OK.format("right")),  # 0
        row("c1", "caption", "A red cube. It falls", OK.format("A red cube. It falls")),  # P = R = 1
        row("c2", "caption", "A. B. C. D", OK.format("A. X")),  # R = 1/4, P = 1/2
        row("o1", "open_ended", "blue", OK.format("blue")),  # 1
        row("o2", "open_ended", "blue", OK.format("green")),  # 0
    ]


class Scripted:
    """A stub generator: answers row.meta['say'] and records every prompt it receives."""

    def __init__(self):
        self.calls = []

    def __call__(self, model, processor, batch, gen_cfg):
        self.calls.append(list(batch))
        return [p.row.meta.get("say", "A") for p in batch]


def cfg(**kw):
    return EvalConfig(**{"frames": FRAMES, "batch_size": 4, "max_new_tokens": 16, "progress": False, **kw})


def test_metrics_per_task_are_exact(clip):
    res = evaluate(("m", "p"), toy_rows(clip), cfg(), generate_fn=Scripted(), judge=ExactJudge())
    m = res.metrics
    assert m["mcq"]["accuracy"] == pytest.approx(2 / 3)  # evaluation reads an untagged answer as base models write it
    assert m["mcq"]["format_rate"] == pytest.approx(2 / 3)
    assert [p["reward"] for p in res.predictions[:3]] == [1.0, 0.0, 0.0]  # the gated reward still needs the format
    assert m["mcq"]["chance"] == pytest.approx((1 / 2 + 1 / 4 + 1 / 2) / 3)
    assert (m["dark_event"]["score_mean"], m["dark_event"]["score_sum"]) == (1.25, 5.0)
    assert [m["dark_event"][f"n_score_{k}"] for k in (0, 1, 2)] == [1, 1, 2]
    assert m["dark_event"]["primary"] == 0.625
    assert m["mixvid"]["accuracy"] == 0.5
    assert m["caption"]["precision"] == pytest.approx(0.75) and m["caption"]["recall"] == pytest.approx(0.625)
    assert m["caption"]["f1"] == pytest.approx(2 * 0.75 * 0.625 / 1.375)
    assert m["open_ended"]["score"] == 0.5
    assert m["overall"]["n"] == 13 and m["overall"]["format_rate"] == pytest.approx(12 / 13)
    by_id = {p["id"]: p for p in res.predictions}
    assert by_id["m1"]["choice"] == "A" and by_id["m3"]["choice"] == "A" and by_id["m3"]["format"] == 0.0
    assert res.table().loc["mixvid", "accuracy"] == 0.5


def test_results_header_and_resume(clip, tmp_path):
    rows = toy_rows(clip)
    gen = Scripted()
    first = evaluate("some/policy", rows[:5], cfg(), tmp_path / "e", generate_fn=gen, judge=ExactJudge())
    assert sum(len(c) for c in gen.calls) == 5 and [len(c) for c in gen.calls] == [4, 1]  # batched
    header = json.loads((tmp_path / "e" / "results.json").read_text())
    assert header["frames"] == FramePolicy.from_dict(FRAMES).to_dict()
    assert header["prompt_version"] == "v1" and header["policy"] == str(Path("some/policy").resolve())
    assert header["decoding"] == {"do_sample": False, "max_new_tokens": 16, "prompt_style": "reason"}
    assert header["status"] == "done"
    assert header["metrics"] == json.loads(json.dumps(first.metrics))
    # same folder, all rows: only the 8 new rows are generated
    gen2 = Scripted()
    full = evaluate("some/policy", rows, cfg(), tmp_path / "e", generate_fn=gen2, judge=ExactJudge())
    assert sorted(p.row.id for c in gen2.calls for p in c) == sorted(r.id for r in rows[5:])
    # and again: nothing at all is generated, nothing appended, same metrics
    lines = (tmp_path / "e" / "predictions.jsonl").read_text()

    def boom(*a):
        raise AssertionError("generated again")

    again = evaluate("some/policy", rows, cfg(), tmp_path / "e", generate_fn=boom, judge=ExactJudge())
    assert again.metrics == full.metrics and (tmp_path / "e" / "predictions.jsonl").read_text() == lines
    assert load_result(tmp_path / "e").metrics == json.loads(json.dumps(full.metrics))
    with pytest.raises(RuntimeError, match="max_new_tokens"):  # other settings: never mixed into the same folder
        evaluate("some/policy", rows, cfg(max_new_tokens=99), tmp_path / "e", generate_fn=boom, judge=ExactJudge())


def test_torn_last_line_is_redone(clip, tmp_path):
    rows = toy_rows(clip)[:3]
    evaluate("p", rows, cfg(), tmp_path, generate_fn=Scripted(), judge=ExactJudge())
    path = tmp_path / "predictions.jsonl"
    path.write_text(path.read_text()[:-20])  # a crash mid-append
    gen = Scripted()
    res = evaluate("p", rows, cfg(), tmp_path, generate_fn=gen, judge=ExactJudge())
    assert [p.row.id for c in gen.calls for p in c] == ["m3"] and res.metrics["mcq"]["n"] == 3


def test_diagnostics_feed_the_four_conditions(clip, tmp_path):
    rows = [r for r in toy_rows(clip) if r.problem_type in ("mcq", "mixvid")]
    gen = Scripted()
    diag = diagnose("p", rows, cfg(batch_size=8), tmp_path, generate_fn=gen, judge=ExactJudge())
    seen = {c[0].condition: c[0] for c in gen.calls}
    assert set(seen) == set(CONDITIONS) and all((tmp_path / c / "results.json").is_file() for c in CONDITIONS)
    real = read_video(clip, FramePolicy.from_dict(FRAMES)).frames
    assert np.array_equal(seen["video"].frames, real)
    shuf = seen["shuffled"].frames
    assert not np.array_equal(shuf, real)
    assert sorted(f.tobytes() for f in shuf) == sorted(f.tobytes() for f in real)  # a permutation of the same frames
    assert seen["blank"].frames.shape == real.shape and not seen["blank"].frames.any()
    assert seen["no_video"].frames is None
    parts = [p for m in seen["no_video"].messages for p in m["content"]]
    assert [p["type"] for p in parts] == ["text"]
    assert parts[0]["text"] == seen["video"].messages[0]["content"][1]["text"]
    assert seen["video"].fps == seen["blank"].fps == seen["shuffled"].fps > 0
    assert list(diag.table.columns[:4]) == list(CONDITIONS)
    assert (diag.table["grounding_gap"] == 0).all() and len(diag.warnings) == 2  # same answers everywhere


def test_grounding_gap_and_loud_warning(capsys):
    def m(mcq, mix):
        return {"mcq": {"primary": mcq, "chance": 0.25}, "mixvid": {"primary": mix}}

    table, warnings = grounding_table({"video": m(0.9, 0.6), "shuffled": m(0.5, 0.6), "blank": m(0.3, 0.58),
                                       "no_video": m(0.25, 0.2)}, margin=0.05)
    assert table.loc["mcq", "grounding_gap"] == pytest.approx(0.6) and table.loc["mcq", "order_gap"] == 0.4
    assert table.loc["mixvid", "grounding_gap"] == pytest.approx(0.02)
    assert len(warnings) == 1 and "mixvid" in warnings[0] and "not watching" in warnings[0]
    assert "blank" in warnings[0]


def test_summarize_ignores_failed_judge_scores():
    preds = [{"problem_type": "mixvid", "format": 1.0, "score": 1.0}, {"problem_type": "mixvid", "format": 1.0,
                                                                      "score": None}]
    assert summarize(preds)["mixvid"]["accuracy"] == 1.0


def test_real_batched_generation_on_micro_policy(clip, tmp_path):
    """Left-padded batches give the same greedy answers as one row at a time, with and without the video."""
    from vvkit.model import build_tiny_policy, load_policy

    corpus = ["What happens? A. red B. blue", OK.format("A"), "Describe this video in detail."] * 3
    folder = build_tiny_policy(tmp_path / "policy", seed=0, corpus=corpus, size="micro")
    pair = load_policy(folder)
    longer = np.zeros((12, 56, 56, 3), np.uint8)
    longer[:, 10:30, 10:30] = (200, 40, 40)
    other = str(write_video(longer, tmp_path / "w.mp4", fps=4))
    rows = [Row("a", clip, "What happens?", "A", "mcq", ["A. red", "B. blue"]),
            Row("b", other, "What happens first, and then what happens?", "B", "mcq", ["A. red", "B. blue"]),
            Row("c", clip, "Describe this video in detail.", "A red square.", "caption")]
    for cond in ("video", "no_video"):
        one, three = (evaluate(pair, rows, cfg(batch_size=bs, max_new_tokens=4), condition=cond, judge=ExactJudge())
                      for bs in (1, 3))
        texts = [p["completion"] for p in three.predictions]
        assert len(texts) == 3 and all(isinstance(t, str) and t for t in texts)
        assert texts == [p["completion"] for p in one.predictions]
    assert policy_dir(tmp_path, "base", str(folder)) == folder
    with pytest.raises(FileNotFoundError, match="notebook 03"):
        policy_dir(tmp_path, "grpo")

    # a baseline-prompt evaluation of the same policy: the benchmark's instruction, no think/answer template,
    # recorded in the header, and read by the same reader as the R1-style answers
    seen = Scripted()
    plain = evaluate(pair, rows, cfg(prompt_style="plain", max_new_tokens=4), judge=ExactJudge())
    assert plain.header["decoding"]["prompt_style"] == "plain"
    evaluate(pair, rows, cfg(prompt_style="plain"), generate_fn=seen, judge=ExactJudge())
    text = seen.calls[0][0].messages[0]["content"][1]["text"]
    assert "<think>" not in text and "option's letter" in text


# ---------------------------------------------------------------- benchmark adapters

def test_videomme_parquet_and_json(tmp_path):
    import pandas as pd

    rec = {"video_id": "001", "duration": "short", "domain": "Knowledge", "sub_category": "Humanity & History",
           "url": "https://x", "videoID": "fFjv93ACGo8", "question_id": "001-1", "task_type": "Counting Problem",
           "question": "How many?", "options": ["A. 1.", "B. 2.", "C. 3.", "D. 4."], "answer": "C"}
    pd.DataFrame([rec]).to_parquet(tmp_path / "test.parquet")
    (tmp_path / "fFjv93ACGo8.mp4").write_bytes(b"")
    (row,) = load_benchmark("videomme", tmp_path / "test.parquet")
    assert (row.id, row.solution, row.problem_type, row.options[2]) == ("videomme/001-1", "C", "mcq", "C. 3.")
    assert row.video == str(tmp_path / "fFjv93ACGo8.mp4") and row.meta["duration"] == "short"
    (tmp_path / "bad.json").write_text(json.dumps([{**rec, "options": ["1", "2"]}]))
    with pytest.raises(BenchmarkError, match=r"bad.json\[0\].*options"):
        load_benchmark("videomme", tmp_path / "bad.json")
    with pytest.raises(BenchmarkMissing, match="lmms-lab/Video-MME"):
        load_benchmark("videomme", tmp_path / "absent.parquet")


def test_mvbench_task_file(tmp_path):
    recs = [{"video": "a.mp4", "question": "What next?", "candidates": ["sit", "run", "jump"], "answer": "run",
             "start": 1.5, "end": 4.0}]
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "action_sequence.json").write_text(json.dumps(recs))
    (tmp_path / "vid").mkdir()
    (tmp_path / "vid" / "a.mp4").write_bytes(b"")
    (row,) = load_benchmark("mvbench", tmp_path / "json", video_root={"action_sequence": str(tmp_path / "vid")})
    assert row.options == ["A. sit", "B. run", "C. jump"] and row.solution == "B"
    assert row.meta == {"task": "action_sequence", "window": [1.5, 4.0]}
    (tmp_path / "json" / "action_sequence.json").write_text(json.dumps([{**recs[0], "answer": "fly"}]))
    with pytest.raises(BenchmarkError, match=r"action_sequence.json\[0\]: field 'answer'"):
        load_benchmark("mvbench", tmp_path / "json", video_root=str(tmp_path / "vid"))


def test_dream1k_metadata(tmp_path):
    recs = [{"idx": 7, "video_file": "DREAM-1K_videos/7.mp4", "description": "A man opens a door. He walks in.",
             "source": "movie", "duration": 9.2, "n_subjects": 1, "n_shots": 1, "n_events": 2}]
    (tmp_path / "metadata.json").write_text(json.dumps(recs))
    (tmp_path / "7.mp4").write_bytes(b"")
    (row,) = load_benchmark("dream1k", tmp_path / "metadata.json")
    assert (row.id, row.problem_type, row.solution) == ("dream1k/7", "caption", recs[0]["description"])
    assert row.problem == "Describe this video in detail." and row.video == str(tmp_path / "7.mp4")
    (tmp_path / "metadata.json").write_text(json.dumps([{**recs[0], "description": ""}]))
    with pytest.raises(BenchmarkError, match="field 'description'"):
        load_benchmark("dream1k", tmp_path / "metadata.json")


def test_nextqa_csv_and_missing_videos(tmp_path):
    head = "video,frame_count,width,height,question,answer,qid,type,a0,a1,a2,a3,a4\n"
    line = "4010069381,369,640,480,how do the two man play the instrument,2,6,CH,roll,tap,strum,hit,pat\n"
    (tmp_path / "val.csv").write_text(head + line)
    (tmp_path / "map_vid_vidorID.json").write_text(json.dumps({"4010069381": "0000/4010069381"}))
    with pytest.raises(BenchmarkMissing, match="1 of 1 videos not found"):
        load_benchmark("nextqa", tmp_path / "val.csv", video_root=tmp_path)
    (tmp_path / "0000").mkdir()
    (tmp_path / "0000" / "4010069381.mp4").write_bytes(b"")
    (row,) = load_benchmark("nextqa", tmp_path / "val.csv", video_root=tmp_path)
    assert row.solution == "C" and row.options[2] == "C. strum" and row.meta == {"type": "CH"}
    (tmp_path / "val.csv").write_text(head + line.replace(",2,6,", ",7,6,"))
    with pytest.raises(BenchmarkError, match=r"val.csv:2: field 'answer'"):
        load_benchmark("nextqa", tmp_path / "val.csv", require_videos=False)
    with pytest.raises(BenchmarkError, match="unknown key"):
        benchmark_spec("x", {"format": "nextqa", "path": "a.csv", "root": "."})


def test_policy_dir_maps_run_stages(tmp_path, capsys):
    base = tmp_path / "policy" / "tiny"
    base.mkdir(parents=True)
    (base / "config.json").write_text("{}")
    (tmp_path / "train" / "grpo" / "final").mkdir(parents=True)
    (tmp_path / "train" / "grpo" / "final" / "config.json").write_text("{}")
    (tmp_path / "train" / "grpo" / "train_config.json").write_text(json.dumps({"sft_steps": 0, "policy": None}))
    assert policy_dir(tmp_path, "grpo") == tmp_path / "train" / "grpo" / "final"
    assert policy_dir(tmp_path, "warm_start") == base  # no SFT warm start: GRPO started from the base policy
    assert "no SFT warm start" in capsys.readouterr().out
    (tmp_path / "train" / "grpo" / "train_config.json").write_text(json.dumps({"sft_steps": 5}))
    with pytest.raises(FileNotFoundError, match="warm_start"):
        policy_dir(tmp_path, "warm_start")


def test_window_from_meta_cuts_the_clip(clip):
    from vvkit.evaluate import prepare_prompt

    policy = FramePolicy.from_dict(FRAMES)
    row = Row("w", clip, "What happens?", "A", "mcq", ["A. x", "B. y"], meta={"window": [0.0, 1.0]})
    got = prepare_prompt(row, policy, "video").frames
    assert np.array_equal(got, read_video(clip, policy, start=0.0, end=1.0).frames)
    assert not np.array_equal(got, read_video(clip, policy).frames)


def test_training_and_evaluation_read_the_same_frames_for_a_windowed_row(clip):
    """One row -> frames path: the trainer's prompt cache and evaluation apply `meta["window"]` alike."""
    from vvkit.evaluate import prepare_prompt
    from vvkit.rollout import load_clips

    policy = FramePolicy.from_dict(FRAMES)
    row = Row("w", clip, "What happens?", "A", "mcq", ["A. x", "B. y"], meta={"window": [0.0, 1.0]})
    (train_frames, fps), = load_clips(row.to_dict(), policy)
    assert np.array_equal(train_frames, prepare_prompt(row, policy, "video").frames)
    assert fps == prepare_prompt(row, policy, "video").fps
