"""Real data in: readers on official-format samples (zero-length segments, missing videos, nested COIN folders,
overlapping ActivityNet events, official splits), the importer of the authors' released jsonl, DarkEventInfer's
visibility rule under a frame policy, MixVidQA clip cutting and clip-list QA, and the paper preset's mix."""
import json
from pathlib import Path

import numpy as np
import pytest

from vvkit.schema import load_rows
from vvkit.synth import adapters as A
from vvkit.synth.adapters import AnnotatedVideo, AnnotationError, Event, load_annotations, steps_paragraph
from vvkit.synth.dark_event import (DarkEventSettings, dark_frames, event_reasons, make_dark_event_row,
                                    nominal_times, sampled_times)
from vvkit.synth.mixvid import (ClipQA, MixVidSettings, cut_clip, interleave_chunks, make_clip_mixvid_row,
                                make_mixvid_row, read_clip_qa, window)
from vvkit.synth import questions as Q
from vvkit.video import FramePolicy

ROOT = Path(__file__).resolve().parents[1]


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


# ---------------------------------------------------------------- readers


def _coin(tmp_path):
    vids = tmp_path / "videos"
    _touch(vids / "LaptopCD" / "c1.mp4")  # COIN's downloader: videos/<recipe_type>/<id>.mp4
    _touch(vids / "Salmon" / "c2.mp4")
    db = {"database": {
        "c1": {"recipe_type": 12, "class": "ReplaceCDDrive", "subset": "training", "duration": 60.0,
               "video_url": "https://www.youtube.com/embed/c1", "annotation": [
                   {"id": "1", "segment": [5.0, 12.0], "label": "take out the laptop CD drive"},
                   {"id": "2", "segment": [20.0, 20.0], "label": "zero length"},
                   {"id": "3", "segment": [50.0, 75.0], "label": "insert the new drive"},
                   {"id": "4", "segment": [80.0, 90.0], "label": "after the end"}]},
        "c2": {"recipe_type": 7, "subset": "testing", "duration": 30.0,
               "annotation": [{"id": "1", "segment": [2.0, 9.0], "label": "season the fish"}]},
        "gone": {"recipe_type": 7, "subset": "training", "duration": 30.0,
                 "annotation": [{"id": "1", "segment": [2.0, 9.0], "label": "cut the fish"}]},
    }}
    (tmp_path / "COIN.json").write_text(json.dumps(db))
    return tmp_path / "COIN.json", vids


def test_coin_nested_folders_bad_segments_and_missing_videos(tmp_path):
    path, vids = _coin(tmp_path)
    videos, report = load_annotations(path, "coin", vids)
    assert [v.id for v in videos] == ["c1", "c2"]  # 'gone' skipped, not fatal
    c1 = videos[0]
    assert c1.path == str(vids / "LaptopCD" / "c1.mp4")
    assert [(e.start, e.end) for e in c1.events] == [(5.0, 12.0), (50.0, 60.0)]  # clipped to the duration
    assert report.missing_videos == ["gone"] and report.clipped_segments == 1
    assert report.dropped_segments == {"zero length": 1, "starts at or after the video's end": 1}
    assert {v.id: v.meta["official_split"] for v in videos} == {"c1": "train", "c2": "test"}
    assert any("1 videos missing" in line for line in report.lines())
    with pytest.raises(AnnotationError, match="video 'gone' not found"):
        load_annotations(path, "coin", vids, strict=True)


def test_video_folder_is_walked_once(tmp_path, monkeypatch):
    path, vids = _coin(tmp_path)
    calls = []
    real_walk = A.os.walk

    def walk(top, *a, **k):
        calls.append(str(top))
        return real_walk(top, *a, **k)

    monkeypatch.setattr(A.os, "walk", walk)
    load_annotations(path, "coin", vids)
    assert calls == [str(vids)]


def test_activitynet_official_files_zero_length_and_overlaps(tmp_path):
    vids = tmp_path / "videos"
    for i in ("v_a1", "v_a2", "v_b1"):
        _touch(vids / f"{i}.mp4")
    anet = tmp_path / "captions"
    anet.mkdir()
    (anet / "train.json").write_text(json.dumps({
        "v_a1": {"duration": 40.0, "timestamps": [[0.0, 20.0], [17.37, 17.37], [5.0, 10.0], [18.0, 30.0]],
                 "sentences": ["A man prepares a board.", "Zero.", "He waxes it.", "He surfs a wave."]},
        "v_a2": {"duration": 10.0, "timestamps": [[1, 4]], "sentences": ["A dog runs."]}}))
    (anet / "val_1.json").write_text(json.dumps({
        "v_b1": {"duration": 20.0, "timestamps": [[0, 5]], "sentences": ["A woman sings."]}}))
    (anet / "val_2.json").write_text(json.dumps({
        "v_b1": {"duration": 20.0, "timestamps": [[2, 6]], "sentences": ["Someone sings."]}}))
    videos, report = load_annotations(anet, "activitynet", vids)
    assert {v.id: v.meta["official_split"] for v in videos} == {"v_a1": "train", "v_a2": "train", "v_b1": "test"}
    assert report.dropped_segments == {"zero length": 1} and any("val_2.json not read" in n for n in report.notes)
    a1 = videos[0]
    assert [(e.start, e.end) for e in a1.events] == [(0.0, 20.0), (5.0, 10.0), (18.0, 30.0)]
    # DarkEventInfer: [0, 20] hides [5, 10] whole (allowed) but only part of [18, 30]; [5, 10] hides part of [0, 20]
    s = DarkEventSettings(min_event_s=1.0, max_share=0.9, min_context_s=0.0, policy=None)
    reasons = event_reasons(a1, s)
    assert reasons == ["hides part of an overlapping event"] * 3
    solo = AnnotatedVideo("x", "x.mp4", 40.0, [Event(2, 12, "A man prepares a board."), Event(4, 8, "He waxes it."),
                                               Event(15, 25, "He surfs.")])
    assert event_reasons(solo, s) == ["", "hides part of an overlapping event", ""]
    row = make_dark_event_row(solo, np.random.default_rng(0), s, "d")
    assert row.edits["mask"] in ([[2, 12]], [[15, 25]])
    # "right before / after" questions are never asked across an overlap
    from vvkit.synth.build import sequential_qa

    qas = sequential_qa(a1.events, Q.event_qa(a1.events, None, ["A cat sleeps.", "A car stops.", "It rains."],
                                              np.random.default_rng(0)))
    order = [(q.family, q.open_answer) for q in qas if q.family in ("after", "before")]
    assert order and set(order) <= {("after", "He surfs a wave."), ("before", "He waxes it.")}  # [5,10] -> [18,30]


def test_youcook2_subset_and_step_sentences(tmp_path):
    vids = tmp_path / "v"
    _touch(vids / "training" / "101" / "y1.mp4")
    (tmp_path / "yc.json").write_text(json.dumps({"database": {"y1": {
        "duration": 50.0, "subset": "validation", "recipe_type": "101", "annotations": [
            {"id": 0, "segment": [3, 9], "sentence": "take out the laptop CD drive"},
            {"id": 1, "segment": [10, 20], "sentence": "remove the screws"},
            {"id": 2, "segment": [21, 30], "sentence": "insert the new drive"}]}}}))
    (y,), _ = load_annotations(tmp_path / "yc.json", "youcook2", vids)
    assert y.meta["official_split"] == "test"
    assert steps_paragraph([e.caption for e in y.events]) == (
        "First, take out the laptop CD drive. Then, remove the screws. Finally, insert the new drive.")
    assert steps_paragraph(["A man walks in.", "CD drives are shown"]) == "First, a man walks in. Finally, CD drives are shown."


# ---------------------------------------------------------------- DarkEventInfer visibility


def test_dark_span_must_cover_sampled_frames():
    policy = FramePolicy(nframes=16)
    times = nominal_times(300.0)  # a 5-minute video at 30 fps: 16 frames are 20 s apart
    sampled = sampled_times(policy, times)
    assert len(sampled) == 16 and np.allclose(np.diff(sampled), np.diff(sampled)[0], atol=0.1)
    short, long_ = Event(100.5, 103.0, "short step"), Event(150.0, 190.0, "long step")
    assert dark_frames(sampled, short.start, short.end) == 0 and dark_frames(sampled, long_.start, long_.end) >= 1
    v = AnnotatedVideo("v", "v.mp4", 300.0, [Event(30, 60, "a"), short, long_])
    s = DarkEventSettings(max_event_s=60, max_share=0.4, policy=policy, min_dark_frames=1)
    reasons = event_reasons(v, s, times)
    assert reasons[1] == "fewer than 1 sampled frames in the span" and reasons[0] == reasons[2] == ""
    for seed in range(10):
        row = make_dark_event_row(v, np.random.default_rng(seed), s, "d", times=times)
        assert row.meta["dark_frames"] >= 1 and row.meta["event_index"] != 1
    strict = DarkEventSettings(max_event_s=60, policy=policy, min_dark_frames=3)
    assert event_reasons(v, strict, times)[0] != ""  # 30 s covers only 1-2 of the 20 s-apart frames
    with pytest.raises(ValueError, match="does not lie inside"):  # the file is shorter than its annotation
        make_dark_event_row(v, np.random.default_rng(0), DarkEventSettings(max_event_s=60, policy=None), "d",
                            times=nominal_times(100.0))


def test_mask_past_the_end_of_a_file_is_an_error(tmp_path):
    from vvkit.video import VideoError, read_video, write_video

    frames = np.full((16, 32, 32, 3), 120, np.uint8)
    path = write_video(frames, tmp_path / "short.mp4", 8.0)  # 2 s
    pol = FramePolicy(fps=8.0, min_pixels=28 * 28, max_pixels=32 * 32, backend="pyav", timeout_s=0)
    assert (read_video(str(path), pol, edits={"mask": [[0.5, 1.0]]}).frames == 0).any()
    with pytest.raises(VideoError, match="ends past"):
        read_video(str(path), pol, edits={"mask": [[1.5, 9.0]]})


# ---------------------------------------------------------------- MixVidQA


def test_mixvid_sources_are_cut_to_clips():
    s = MixVidSettings(clip_s=10.0)
    starts = set()
    for seed in range(20):
        rng = np.random.default_rng(seed)
        (sa, la), (sb, lb) = cut_clip(120.0, 10.0, rng), cut_clip(300.0, 10.0, rng)
        assert la == lb == 10.0 and 0 <= sa <= 110 and 0 <= sb <= 290
        chunks = interleave_chunks((la, lb), rng, s, None, (sa, sb))
        for src, lo in ((0, sa), (1, sb)):
            mine = [c for c in chunks if c[0] == src]
            assert mine[0][1] == pytest.approx(lo) and all(lo - 1e-6 <= c[1] < c[2] <= lo + 10 + 1e-6 for c in mine)
        assert sum(c[2] - c[1] for c in chunks) <= 20 + 1e-6  # two 10 s clips, not two long videos
        starts.add(round(sa, 3))
    assert len(starts) > 10  # random start
    assert cut_clip(120.0, 10.0, np.random.default_rng(3)) == cut_clip(120.0, 10.0, np.random.default_rng(3))
    assert cut_clip(6.0, 10.0, np.random.default_rng(0)) == (0.0, 6.0)


def _long_video(vid, captions, t0=0.0):
    events = [Event(t0 + 2.5 * i, t0 + 2.5 * i + 2.0, c) for i, c in enumerate(captions)]
    return AnnotatedVideo(vid, f"{vid}.mp4", 200.0, events)


def test_mixvid_question_speaks_of_the_clip():
    a = _long_video("a", ["A man opens a door.", "He enters a room.", "He sits down.", "He reads a book."], 50.0)
    b = _long_video("b", ["A dog runs.", "It jumps a fence.", "It barks.", "It lies down."], 120.0)
    pool = [e.caption for e in a.events + b.events]
    seen_cues = set()
    for seed in range(40):
        rng = np.random.default_rng(seed)
        wa, wb = window(a, 49.0, 10.0), window(b, 119.0, 10.0)
        assert wa.events[0].start == pytest.approx(1.0) and wa.duration == 10.0
        row = make_mixvid_row(wa, wb, lambda u: Q.event_qa(wa.events, u, pool, rng),
                              lambda u: Q.event_qa(wb.events, u, pool, rng), rng, MixVidSettings(), "m",
                              Q.EVENT_FAMILIES, starts=(49.0, 119.0))
        if row is None:
            continue
        assert "in the video" not in row.problem
        assert all(c[1] >= (49.0, 119.0)[c[0]] - 1e-6 for c in row.edits["interleave"])
        seen_cues.add(row.meta["cue"])
        if row.meta["family"] in ("after", "before"):
            assert row.meta["cue"] == "content" and "clip shown" not in row.problem
        else:
            assert row.meta["cue"] == "position" and "clip shown" in row.problem and "this clip" in row.problem
    assert seen_cues == {"content", "position"}


def test_clip_list_is_a_mixvid_source(tmp_path):
    for n in ("k1", "k2"):
        _touch(tmp_path / "kinetics" / f"{n}.mp4")
    lines = [
        json.dumps({"video": "kinetics/k1.mp4", "question": "What is the boy's focus during the video?",
                    "answer": "stacking red cups", "duration": 10.0, "label": "stacking cups"}),
        "{not json",
        json.dumps({"video": "kinetics/k2.mp4", "question": "What does the woman play?", "answer": "a violin",
                    "duration": 12.0}),
        json.dumps({"video": "kinetics/k3.mp4", "question": "q", "answer": "a", "duration": 10.0}),
        json.dumps({"video": "kinetics/k1.mp4", "answer": "x"}),
    ]
    (tmp_path / "clips.jsonl").write_text("\n".join(lines) + "\n")
    clips, problems = read_clip_qa(tmp_path / "clips.jsonl")
    assert [c.id for c in clips] == ["clips-1", "clips-3"] and clips[0].meta == {"label": "stacking cups"}
    assert [p.split(": ", 1)[0].rsplit(":", 1)[1] for p in problems] == ["2", "4", "5"]
    assert "not found" in problems[1] and "missing field(s) ['question']" in problems[2]
    with pytest.raises(ValueError, match=r"clips.jsonl:2: not valid JSON"):
        read_clip_qa(tmp_path / "clips.jsonl", strict=True)
    row = make_clip_mixvid_row(clips[0], clips[1], np.random.default_rng(0), MixVidSettings(), "m")
    assert row.solution == "stacking red cups" and row.meta["cue"] == "content"
    assert "clip shown" not in row.problem and "during this clip" in row.problem
    assert row.video == [clips[0].video, clips[1].video]
    assert all(c[2] <= (10.0, 12.0)[c[0]] + 1e-6 for c in row.edits["interleave"])
    same = ClipQA("z", clips[0].video, clips[0].question, clips[0].answer, 10.0)
    assert make_clip_mixvid_row(clips[0], same, np.random.default_rng(0), MixVidSettings(), "m") is None


# ---------------------------------------------------------------- the authors' released data


def _released(tmp_path, root="/mnt/authors/VidBridge-R1/data"):
    recs = [
        {"problem": "How does one know that the sheep are domesticated?\nOptions:\nA. yellow tag on large sheep's ear.\n"
                    "B. they are in a field.\nC. they are eating.\nD. they are white.\nE. they are running.",
         "solution": "<answer>A. yellow tag on large sheep's ear.</answer>", "problem_type": "MCQA",
         "video": f"{root}/nextqa/1001.mp4", "data_source": "nextqa"},
        {"problem": "What colour is the car? (A) red (B) blue (C) green", "solution": "<answer>B</answer>",
         "problem_type": "MCQA", "video": f"{root}/nextqa/1002.mp4"},
        {"problem": "Examine the video with a black screen and infer the hidden event.",
         "solution": "<answer>The black screen likely hides seasoning the fish.</answer>",
         "problem_type": "DarkEventInfer", "video": f"{root}/dark/coin_01.mp4"},
        {"problem": "The clip alternates between two sources. What is the boy's focus during the video?",
         "solution": "<answer>rearranging and stacking the red solo cups</answer>", "problem_type": "MixVidQA",
         "video": f"{root}/mix/k_01.mp4"},
        {"problem": "Describe this video in detail.", "solution": "<answer>A rider jumps a fence.</answer>",
         "problem_type": "caption", "video": f"{root}/caption/c_01.mp4"},
    ]
    lines = [json.dumps(r) for r in recs]
    lines.insert(2, '{"problem": "broken", "solution": ')  # malformed line 3
    lines.append(json.dumps({"problem": "Q?", "solution": "<answer>A</answer>", "problem_type": "MCQA",
                             "video": f"{root}/nextqa/x.mp4"}))  # no options: line 7
    path = tmp_path / "VidBridge-R1_training_data.jsonl"
    path.write_text("\n".join(lines) + "\n")
    vids = tmp_path / "mine"
    for sub in ("nextqa/1001", "dark/coin_01", "mix/k_01", "caption/c_01"):
        _touch(vids / f"{sub}.mp4")
    return path, vids


def test_import_released_data(tmp_path):
    from vvkit.synth.importers import DataImportError, import_vidbridge

    path, vids = _released(tmp_path)
    rows, report = import_vidbridge(path, vids)
    assert [r.problem_type for r in rows] == ["mcq", "mcq", "dark_event", "mixvid", "caption"]
    mcq, inline, dark, mix, cap = rows
    assert mcq.problem == "How does one know that the sheep are domesticated?"
    assert mcq.options[0] == "A. yellow tag on large sheep's ear." and len(mcq.options) == 5
    assert mcq.solution == "A" and mcq.meta["answer_text"] == "A. yellow tag on large sheep's ear."
    assert mcq.meta["data_source"] == "nextqa" and mcq.meta["line"] == 1
    assert mcq.meta["original_problem"].endswith("E. they are running.")
    assert inline.options == ["A. red", "B. blue", "C. green"] and inline.solution == "B"
    assert inline.problem == "What colour is the car?"
    assert dark.solution == "The black screen likely hides seasoning the fish." and dark.edits is None
    assert mix.video == str(vids / "mix" / "k_01.mp4") and cap.solution == "A rider jumps a fence."
    assert report.prefix == "/mnt/authors/VidBridge-R1/data"
    assert report.videos_found == 4 and report.videos_missing == 1
    assert [p.split(": ")[0].rsplit(":", 1)[1] for p in report.problems] == ["3", "7"]
    assert "not valid JSON" in report.problems[0] and "no options" in report.problems[1]
    assert dict(report.per_task) == {"mcq": 2, "dark_event": 1, "mixvid": 1, "caption": 1}
    with pytest.raises(DataImportError, match=r"training_data.jsonl:3: not valid JSON"):
        import_vidbridge(path, vids, strict=True)
    with pytest.raises(DataImportError, match="does not start with the prefix"):
        import_vidbridge(path, vids, strip_prefix="/elsewhere", strict=True)
    _touch(vids / "data" / "nextqa" / "1001.mp4")  # one video under the longer remainder: the import goes through
    rows2, _ = import_vidbridge(path, vids, strip_prefix="/mnt/authors/VidBridge-R1")
    assert rows2[0].video == str(vids / "data" / "nextqa" / "1001.mp4")


def test_import_data_command(tmp_path, capsys):
    from vvkit.cli import main

    path, vids = _released(tmp_path)
    out = tmp_path / "rows.jsonl"
    assert main(["import-data", "--format", "vidbridge", str(path), "--video-root", str(vids), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "5 rows imported" in text and "caption 1, dark_event 1, mcq 2, mixvid 1" in text
    assert "videos found: 4, missing: 1" in text and "2 lines not converted" in text and ":3:" in text
    rows = load_rows(out)
    assert len(rows) == 5 and rows[0].paths == [str(vids / "nextqa" / "1001.mp4")]
    assert main(["import-data", "--format", "vidbridge", str(path), "--video-root", str(vids), "--out",
                 str(tmp_path / "x.jsonl"), "--strict"]) == 2
    assert "3: not valid JSON" in capsys.readouterr().err


def test_build_dataset_from_released_data_keeps_the_mix(tmp_path):
    from vvkit.config import SynthConfig
    from vvkit.synth import build_dataset

    path, vids = _released(tmp_path)
    cfg = SynthConfig(run_dir=str(tmp_path), source="vidbridge", data_path=str(path), video_root=str(vids),
                      num_videos=0, test_fraction=0.0, task_mix={"mcq": 2, "dark_event": 1, "mixvid": 1, "caption": 1})
    summary = build_dataset(cfg)
    assert summary["counts"]["train"] == {"mcq": 2, "open_ended": 0, "caption": 1, "dark_event": 1, "mixvid": 1}
    assert summary["import"]["rows"] == 5 and len(summary["import"]["problems"]) == 2
    cfg2 = SynthConfig(run_dir=str(tmp_path), out_dir="d2", source="vidbridge", data_path=str(path),
                       video_root=str(vids), test_fraction=0.0, task_mix={"mcq": 1, "caption": 1})
    s2 = build_dataset(cfg2)  # 1:1 -> one of each (caption limits it)
    assert s2["counts"]["train"]["mcq"] == 1 and s2["counts"]["train"]["caption"] == 1
    assert all(r.source == "vidbridge" for r in load_rows(tmp_path / "d2" / "train.jsonl"))


# ---------------------------------------------------------------- the paper preset


def test_paper_preset_trains_the_paper_mix(capsys):
    import yaml

    from vvkit.cli import main

    assert main(["params", str(ROOT / "params" / "paper.yaml")]) == 0
    assert "ok" in capsys.readouterr().out
    params = yaml.safe_load((ROOT / "params" / "paper.yaml").read_text())
    ds = params["data_synthesis"]
    assert ds["source"] == "vidbridge" and ds["data_path"] and ds["video_root"]
    mix = ds["task_mix"]
    assert mix == {"dark_event": 1841, "mixvid": 2332, "mcq": 2003, "caption": 4624} and sum(mix.values()) == 10800
    assert params["frames"]["nframes"] == 16
    assert params["grpo_training"]["difficulty_filter_k"] == 5


def test_import_data_refuses_a_release_with_no_video_found(tmp_path, capsys):
    from vvkit.cli import main
    from vvkit.synth.importers import DataImportError, import_vidbridge

    path, vids = _released(tmp_path)
    first = str(vids / "data" / "nextqa" / "1001.mp4")  # the prefix leaves "data/" in every path
    with pytest.raises(DataImportError, match="none of the 5 videos") as err:
        import_vidbridge(path, vids, strip_prefix="/mnt/authors/VidBridge-R1")
    assert first in str(err.value) and "strip_prefix" in str(err.value) and "video_root" in str(err.value)
    out = tmp_path / "rows.jsonl"
    assert main(["import-data", "--format", "vidbridge", str(path), "--video-root", str(vids), "--out", str(out),
                 "--strip-prefix", "/mnt/authors/VidBridge-R1"]) == 2
    msg = capsys.readouterr().err
    assert first in msg and "--strip-prefix" in msg and "--video-root" in msg and not out.exists()
