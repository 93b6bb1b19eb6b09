"""vvkit.benchmarks on files written here in each published layout (Video-MME lmms-eval data/ and VLMEvalKit video/,
MVBench per-task folders, DREAM-1K hub and both Tarsier layouts, NExT-QA mapped and flat), AutoDQ with and without
DREAM-1K's annotated events (offline and HTTP judge), the offline judge's warning outside the toy world, and the
official breakdowns on a scripted generator whose answers are known."""
import json
import warnings

import numpy as np
import pytest

import vvkit.rewards.scorer as S
from vvkit.benchmarks import (
    BenchmarkError, BenchmarkMissing, breakdown, breakdown_table, comparison_table, evaluate_benchmarks,
    headline_score, load_benchmark,
)
from vvkit.rewards.client import HTTPJudge
from vvkit.rewards.judges import OfflineJudge
from vvkit.schema import Row

VM = {"video_id": "001", "duration": "short", "domain": "Knowledge", "sub_category": "Humanity & History",
      "url": "https://x", "videoID": "fFjv93ACGo8", "question_id": "001-1", "task_type": "Counting Problem",
      "question": "How many?", "options": ["A. 1.", "B. 2.", "C. 3.", "D. 4."], "answer": "C"}


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_one_reader_per_benchmark_module():
    import vvkit.benchmarks as B

    assert {fmt: fn.__module__ for fmt, fn in B.LOADERS.items()} == {
        fmt: f"vvkit.benchmarks.{fmt}" for fmt in ("videomme", "mvbench", "dream1k", "nextqa")}
    assert not hasattr(B, "headline")  # the benchmark's number is headline_score; vvkit.analysis.headline is another


# ---------------------------------------------------------------- Video-MME

@pytest.mark.parametrize("folder", ["data", "video"])  # lmms-eval, VLMEvalKit
def test_videomme_dataset_folders(tmp_path, folder):
    import pandas as pd

    (tmp_path / "videomme").mkdir()
    pd.DataFrame([VM]).to_parquet(tmp_path / "videomme" / "test-00000-of-00001.parquet")
    video = touch(tmp_path / folder / "fFjv93ACGo8.mp4")
    for path in (tmp_path, tmp_path / "videomme" / "test-00000-of-00001.parquet"):  # dataset root or the file
        (row,) = load_benchmark("videomme", path)
        assert row.video == str(video) and row.solution == "C"
        assert {k: row.meta[k] for k in ("duration", "domain", "task_type")} == {
            "duration": "short", "domain": "Knowledge", "task_type": "Counting Problem"}


def test_videomme_errors_name_file_row_and_field(tmp_path):
    (tmp_path / "v.jsonl").write_text(json.dumps(VM) + "\n" + json.dumps({**VM, "answer": "E"}) + "\n")
    with pytest.raises(BenchmarkError, match=r"v.jsonl:2 \(question_id 001-1\): field 'answer' = 'E'"):
        load_benchmark("videomme", tmp_path / "v.jsonl", require_videos=False)
    with pytest.raises(BenchmarkMissing, match="data/<videoID>.mp4"):
        load_benchmark("videomme", tmp_path / "videomme")


# ---------------------------------------------------------------- MVBench

MV = {"video": "video_10000.mp4", "question": "What moves?", "candidates": ["cube", "sphere", "cylinder"],
      "answer": "sphere"}
MV_SEQ = {"video": "0A8CF.mp4", "question": "What did the person do first?", "candidates": ["sat", "ran"],
          "answer": "ran", "start": 2.0, "end": 7.5}


def mvbench_root(tmp_path):
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "moving_direction.json").write_text(json.dumps([MV]))
    (tmp_path / "json" / "action_sequence.json").write_text(json.dumps([MV_SEQ]))
    return tmp_path


def test_mvbench_hub_layout_per_task_folders(tmp_path):
    root = mvbench_root(tmp_path)
    a = touch(root / "video" / "clevrer" / "video_validation" / "video_10000.mp4")
    b = touch(root / "video" / "star" / "Charades_v1_480" / "0A8CF.mp4")
    for path in (root, root / "json"):
        seq, mov = load_benchmark("mvbench", path)
        assert (mov.video, mov.solution, mov.meta) == (str(a), "B", {"task": "moving_direction"})
        assert (seq.video, seq.meta["window"]) == (str(b), [2.0, 7.5])  # the full video: cut at decode time
    (row,) = load_benchmark("mvbench", root / "json" / "moving_direction.json")  # one task file
    assert row.video == str(a)


def test_mvbench_lmms_eval_layout_and_explicit_folders(tmp_path):
    root = mvbench_root(tmp_path)
    touch(root / "clevrer" / "video_validation" / "video_10000.mp4")
    seg = touch(root / "star" / "Charades_segment" / "0A8CF.mp4")
    seq, _ = load_benchmark("mvbench", root)
    assert seq.video == str(seg) and "window" not in seq.meta  # a pre-cut segment is not cut again
    mine = touch(tmp_path / "mine" / "0A8CF.mp4")
    touch(tmp_path / "mine" / "video_10000.mp4")
    folders = {"action_sequence": str(tmp_path / "mine"), "moving_direction": str(tmp_path / "mine")}
    seq, _ = load_benchmark("mvbench", root, video_root=folders)
    assert seq.video == str(mine) and seq.meta["window"] == [2.0, 7.5]
    (root / "json" / "moving_direction.json").write_text(json.dumps([MV, {**MV, "candidates": "cube"}]))
    with pytest.raises(BenchmarkError, match=r"moving_direction.json\[1\]: field 'candidates'"):
        load_benchmark("mvbench", root, require_videos=False)


# ---------------------------------------------------------------- DREAM-1K

DESC = "A man opens a door. He walks in."
EVENTS = ["A man opens a door.", "The man walks in."]


def tarsier_chat(idx, reference=DESC):
    return {"messages": [
        {"role": "user", "content": [
            {"type": "video", "video": {"video_file": f"/mnt/hdfs/videos/{idx}.mp4"}, "text": None, "reference": None},
            {"type": "text", "text": "Describe the video in detail.", "video": None, "reference": None}]},
        {"role": "assistant", "content": [{"type": "text", "text": "", "reference": reference, "video": None}]}],
        "dataset": "DREAM/live_action", "task": "video/caption", "idx": idx, "vid": idx,
        "extra_info": {"duration": 9.2, "events": EVENTS, "n_events": 2, "n_shots": 1, "n_subjects": 1}}


def tarsier_flat(idx):
    return {"idx": idx, "dataset": "DREAM/stock", "text": {"prompt": "<video>\nDescribe the video in detail.",
            "response": DESC}, "video_file": "<placeholder>", "vid": idx,
            "extra_info": {"duration": 4.0, "events": EVENTS, "n_events": 2, "n_shots": 1, "n_subjects": 1}}


def test_dream1k_hub_metadata_keeps_events(tmp_path):
    rec = {"idx": 7, "video_file": "DREAM-1K_videos/7.mp4", "description": DESC, "events": EVENTS,
           "source": "movie", "duration": 9.2, "n_subjects": 1, "n_shots": 1, "n_events": 2}
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "metadata.json").write_text(json.dumps([rec]))
    video = touch(tmp_path / "video" / "7.mp4")
    for path in (tmp_path / "json" / "metadata.json", tmp_path):
        (row,) = load_benchmark("dream1k", path)
        assert (row.id, row.solution, row.video) == ("dream1k/7", DESC, str(video))
        assert row.meta["events"] == EVENTS and row.meta["source"] == "movie" and row.meta["n_events"] == 2


def test_dream1k_tarsier_layouts(tmp_path):
    ann = tmp_path / "data" / "annotations" / "DREAM-1k.jsonl"
    ann.parent.mkdir(parents=True)
    ann.write_text(json.dumps(tarsier_chat(1)) + "\n" + json.dumps(tarsier_flat(2)) + "\n")
    videos = tmp_path / "videos"
    v1, v2 = touch(videos / "1.mp4"), touch(videos / "2.mp4")
    chat, flat = load_benchmark("dream1k", ann, video_root=videos)
    assert (chat.solution, chat.video, chat.meta["source"], chat.meta["events"]) == (DESC, str(v1), "live_action",
                                                                                      EVENTS)
    assert (flat.solution, flat.video, flat.meta["source"], flat.meta["duration"]) == (DESC, str(v2), "stock", 4.0)
    ann.write_text(json.dumps(tarsier_chat(1)) + "\n" + json.dumps(tarsier_chat(3, reference="")) + "\n")
    with pytest.raises(BenchmarkError, match=r"DREAM-1k.jsonl:2: field 'messages\[1\].content\[0\].reference'"):
        load_benchmark("dream1k", ann, require_videos=False)
    ann.write_text(json.dumps({**tarsier_flat(4), "extra_info": {"events": "one long string"}}) + "\n")
    with pytest.raises(BenchmarkError, match=r"DREAM-1k.jsonl:1: field 'extra_info.events'"):
        load_benchmark("dream1k", ann, require_videos=False)
    ann.write_text(json.dumps({"idx": 5, "caption": DESC}) + "\n")
    with pytest.raises(BenchmarkError, match=r"DREAM-1k.jsonl:1: not a DREAM-1K record"):
        load_benchmark("dream1k", ann, require_videos=False)


# ---------------------------------------------------------------- NExT-QA

HEAD = "video,frame_count,width,height,question,answer,qid,type,a0,a1,a2,a3,a4\n"
LINE = "4010069381,369,640,480,how do the two man play the instrument,2,6,CH,roll,tap,strum,hit,pat\n"


@pytest.mark.parametrize("layout", ["0000/4010069381.mp4", "4010069381.mp4", "NExTVideo/4010069381.mp4"])
def test_nextqa_mapped_and_flat(tmp_path, layout):
    (tmp_path / "val.csv").write_text(HEAD + LINE + LINE.replace(",6,CH,", ",7,TP,"))
    (tmp_path / "map_vid_vidorID.json").write_text(json.dumps({"4010069381": "0000/4010069381"}))
    video = touch(tmp_path / layout)  # the map beside the CSV, the videos mapped or flat (lmms-eval)
    rows = load_benchmark("nextqa", tmp_path / "val.csv", video_root=tmp_path)
    assert [r.video for r in rows] == [str(video)] * 2 and rows[0].options[2] == "C. strum"
    assert [r.meta["type"] for r in rows] == ["CH", "TP"]


# ---------------------------------------------------------------- AutoDQ and the reference events

REF = "The red square moves left. Then the blue circle grows."
REF_EVENTS = ["The red square moves left.", "The blue circle grows.", "The green triangle enters from the top."]
PRED = "The red square moves left. The green triangle enters from the top."


def test_offline_autodq_with_and_without_reference_events():
    judge = OfflineJudge()
    plain, annotated = judge.autodq([PRED, PRED], [REF, REF], ref_events=[None, REF_EVENTS])
    # without events: both come from the description (the square is in it, the triangle is not)
    assert (plain["recall"], plain["precision"], plain["annotated_events"]) == (0.5, 0.5, False)
    # with events: recall over the three annotated events, precision still against the description
    assert annotated["recall"] == pytest.approx(2 / 3) and annotated["precision"] == 0.5
    assert annotated["ref_events"] == REF_EVENTS and annotated["annotated_events"]
    assert judge.autodq([PRED], [REF]) == [plain]


class FakeEndpoint:
    """Replies like an LLM judge: events are the caption's sentences; an event is entailed when its words are in
    the caption."""

    def __init__(self):
        self.extracted = []

    def __call__(self, payload):
        user = payload["messages"][-1]["content"]
        caption = user.split("Caption of a video:\n", 1)[1].split("\n\n", 1)[0].strip()
        if "Break the caption" in user:
            self.extracted.append(caption)
            return json.dumps({"events": [s.strip() for s in caption.split(".") if s.strip()]})
        events = [line.split(". ", 1)[1] for line in user.split("Events:\n", 1)[1].split("\n\n")[0].splitlines()]
        words = set(caption.lower().replace(".", "").split())
        return json.dumps({"labels": ["entailment" if set(e.lower().strip(".").split()) <= words else "neutral"
                                      for e in events]})


def test_http_autodq_uses_reference_events(monkeypatch):
    judge = HTTPJudge(base_url="http://judge.invalid/v1", model="fake")
    fake = FakeEndpoint()
    monkeypatch.setattr(judge, "_post", fake)
    plain, annotated = judge.autodq([PRED, PRED], [REF, REF], ref_events=[None, REF_EVENTS])
    assert (plain["recall"], plain["precision"]) == (0.5, 0.5)
    assert (annotated["recall"], annotated["precision"]) == (pytest.approx(2 / 3), 0.5)
    assert annotated["ref_events"] == REF_EVENTS and annotated["annotated_events"]
    assert fake.extracted.count(REF) == 1 and PRED in fake.extracted  # the reference extracted only once, for plain


def test_score_rows_feeds_events_and_refuses_a_judge_without_them():
    rows = [{"solution": REF, "problem_type": "caption", "problem": "Describe.", "source": "toyworld",
             "meta": {"events": REF_EVENTS}}]
    (rec,) = S.score_rows([PRED], rows, {}, OfflineJudge())
    assert rec["recall"] == pytest.approx(2 / 3) and rec["precision"] == 0.5

    class OldJudge:
        def score_dark_event(self, *a):
            return []

        score_mixvid = score_dark_event

        def autodq(self, preds, refs):
            return [{"recall": 1.0, "precision": 1.0, "f1": 1.0}] * len(preds)

    with pytest.raises(TypeError, match="ref_events"):
        S.score_rows([PRED], rows, {}, OldJudge())
    assert S.score_rows([PRED], [{**rows[0], "meta": {}}], {}, OldJudge())[0]["recall"] == 1.0


def test_offline_judge_warns_once_outside_the_toy_world():
    judge = OfflineJudge()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        judge.note_sources(["toyworld", "toyworld", None])  # toy rows, or rows of unknown source: silent
    with pytest.warns(UserWarning, match=r"scoring 2 row\(s\) that are not toy-world rows \(source dream1k\)"):
        judge.note_sources(["toyworld", "dream1k", "dream1k"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        judge.note_sources(["dream1k"])  # once per judge ...
    assert judge.foreign_rows == 3  # ... while the count goes on
    rows = [{"solution": REF, "problem_type": "caption", "problem": "Describe.", "source": "dream1k"}]
    with pytest.warns(UserWarning, match="not toy-world rows"):
        S.score_rows([PRED], rows, {}, OfflineJudge())
    assert "negation" in OfflineJudge.__doc__


# ---------------------------------------------------------------- breakdowns

class Scripted:
    """Answers by row id; base-model style (untagged) or the kit's (tagged)."""

    def __init__(self, answers):
        self.answers = answers

    def __call__(self, model, processor, batch, gen_cfg):
        return [self.answers[p.row.id] for p in batch]


class CaptionJudge:
    def score_dark_event(self, preds, refs, questions=None):
        return [0] * len(preds)

    score_mixvid = score_dark_event

    def autodq(self, preds, refs, ref_events=None):
        return [{"recall": 0.5, "precision": 1.0, "f1": 2 / 3} for _ in preds]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from vvkit.video import write_video

    frames = np.zeros((4, 56, 56, 3), np.uint8)
    frames[:, 20:36, 20:36] = (0, 200, 90)
    return write_video(frames, tmp_path_factory.mktemp("clip") / "v.mp4", fps=4)


def videomme_records():
    spec = [("short", "Knowledge", "Counting Problem", "A"), ("short", "Knowledge", "OCR Problems", "B"),
            ("medium", "Multilingual", "Counting Problem", "C"), ("long", "Knowledge", "Temporal Reasoning", "D")]
    return [{**VM, "question_id": f"q{i}", "videoID": f"vid{i}", "duration": d, "domain": dom, "task_type": t,
             "answer": a} for i, (d, dom, t, a) in enumerate(spec)]


def test_breakdowns_from_scripted_answers(clip, tmp_path):
    from vvkit.evaluate import EvalConfig

    import shutil

    root = tmp_path / "videomme"
    (root / "data").mkdir(parents=True)
    recs = videomme_records()
    (root / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    for r in recs:
        shutil.copy(clip, root / "data" / f"{r['videoID']}.mp4")
    tagged = "<think>I counted.</think><answer>{}</answer>"
    answers = {"videomme/q0": tagged.format("A"), "videomme/q1": tagged.format("C"),  # right, wrong
               "videomme/q2": tagged.format("(C)"), "videomme/q3": "<think>no tags</think>"}  # right, no answer
    cfg = EvalConfig(frames={"nframes": 2, "min_pixels": 56 * 56, "max_pixels": 56 * 56, "backend": "pyav",
                             "timeout_s": 0}, batch_size=2, max_new_tokens=8, progress=False)
    out = evaluate_benchmarks({"base": "some/policy"}, {"vmme": {"format": "videomme", "path": str(root / "test.jsonl")}},
                              cfg, tmp_path / "eval", generate_fn=Scripted(answers), judge=CaptionJudge())
    result = out["vmme"]["base"]
    bd = result.header["breakdown"]
    assert bd["overall"] == {"n": 4, "accuracy": 0.5, "answered": 0.75}
    assert list(bd["duration"]) == ["short", "medium", "long"]  # the scorer's order
    assert {k: v["accuracy"] for k, v in bd["duration"].items()} == {"short": 0.5, "medium": 1.0, "long": 0.0}
    assert {k: v["accuracy"] for k, v in bd["domain"].items()} == {"Knowledge": 1 / 3, "Multilingual": 1.0}
    assert bd["task_type"]["Counting Problem"] == {"n": 2, "accuracy": 1.0, "answered": 1.0}
    saved = json.loads((tmp_path / "eval" / "base" / "benchmarks" / "vmme" / "results.json").read_text())
    assert saved["breakdown"]["duration"]["short"]["accuracy"] == 0.5 and saved["benchmark"] == "videomme"
    assert "metrics" in saved and headline_score(bd) == 50.0
    table = breakdown_table(bd)
    assert "| duration | medium | 1 | 100.0 | 100.0 |" in table


def test_nextqa_mvbench_dream_breakdowns():
    def rows_and_preds(specs, benchmark, key):
        rows, preds = [], []
        for i, (group, score) in enumerate(specs):
            rows.append(Row(f"{benchmark}/{i}", "v.mp4", "q", "A", "mcq", ["A. x", "B. y"], meta={key: group}))
            preds.append({"id": f"{benchmark}/{i}", "score": score, "choice": "A" if score else None})
        return rows, preds

    rows, preds = rows_and_preds([("CW", 1.0), ("CH", 0.0), ("TN", 1.0), ("TP", 0.0), ("TC", 1.0), ("DC", 1.0)],
                                 "nextqa", "type")
    bd = breakdown(preds, rows, "nextqa")
    assert {g: c["accuracy"] for g, c in bd["group"].items()} == {"C": 0.5, "T": pytest.approx(2 / 3), "D": 1.0}
    assert bd["type"]["TN"] == {"n": 2, "accuracy": 0.5, "answered": 0.5}  # TP counted as TN (eval_mc.py)
    assert "TP" not in bd["type"] and "| group | C (Acc_C) | 2 | 50.0 | 50.0 |" in breakdown_table(bd)

    rows, preds = rows_and_preds([("action_count", 1.0), ("action_count", 1.0), ("action_count", 0.0),
                                  ("moving_count", 0.0)], "mvbench", "task")
    bd = breakdown(preds, rows, "mvbench")
    assert bd["task"]["action_count"]["accuracy"] == pytest.approx(2 / 3) and bd["overall"]["accuracy"] == 0.5
    assert bd["task_mean"] == pytest.approx(1 / 3) and headline_score(bd) == pytest.approx(100 / 3)  # mean over tasks

    rows = [Row(f"dream1k/{i}", "v.mp4", "Describe.", "ref", "caption", meta={"source": s})
            for i, s in enumerate(["movie", "movie", "stock"])]
    preds = [{"id": "dream1k/0", "precision": 1.0, "recall": 0.5}, {"id": "dream1k/1", "precision": 0.5,
              "recall": 0.5}, {"id": "dream1k/2", "precision": None, "recall": None, "score": None}]
    bd = breakdown(preds, rows, "dream1k")
    assert bd["source"]["movie"]["precision"] == 0.75 and bd["source"]["movie"]["f1"] == pytest.approx(0.6)
    assert bd["overall"]["failed"] == 1 and headline_score(bd) == pytest.approx(60.0)
    with pytest.raises(ValueError, match="no row"):
        breakdown(preds, rows[:1], "dream1k")


def test_comparison_table_against_entered_numbers():
    table = comparison_table({"Qwen2.5-VL-7B (vvkit)": {"Video-MME": 58.9, "MVBench": 63.1}},
                             {"paper": {"Video-MME": 59.4, "MVBench": None, "NExT-QA": 80.5}})
    lines = table.splitlines()
    assert lines[0] == "| benchmark | paper | Qwen2.5-VL-7B (vvkit) | Δ Qwen2.5-VL-7B (vvkit) vs paper |"
    assert "| Video-MME | 59.4 | 58.9 | -0.5 |" in lines and "| MVBench | – | 63.1 | – |" in lines
    assert "| NExT-QA | 80.5 | – | – |" in lines
