"""vvkit and lmms-eval: the frame mapping, the task exporter and the results check run here in the main environment
(lmms-eval replaced by a stand-in interpreter); the tests marked `needs_lmms` run lmms-eval itself and need
.venv-lmms, where `make test-lmms` (part of `make test`) runs this file with VVKIT_LMMS_TESTS=1."""
import importlib.util
import json
import os
import shutil
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import vvkit.lmms_eval as L
import vvkit.lmms_tasks as T
from vvkit import cli
from vvkit.config import read_params, stage_config
from vvkit.rewards.scorer import score_rows
from vvkit.rundir import RunDir
from vvkit.schema import load_rows
from vvkit.video import FramePolicy, read_video

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "params" / "smoke.yaml"
IN_LMMS_ENV = os.environ.get("VVKIT_LMMS_TESTS") == "1"  # set by `make test-lmms`: there a missing lmms-eval fails
needs_lmms = pytest.mark.skipif(importlib.util.find_spec("lmms_eval") is None and not IN_LMMS_ENV,
                                reason="needs lmms-eval: runs in .venv-lmms through `make test-lmms` (part of "
                                       "`make test`)")


class _Loader(yaml.SafeLoader):
    """Reads lmms-eval task YAML: `!function utils.x` becomes the string 'utils.x'."""


_Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """A run folder of the smoke preset: params.yaml, the toy data (train and test) and the tiny policy."""
    from vvkit.model import build_tiny_policy
    from vvkit.synth.build import build_dataset

    run = tmp_path_factory.mktemp("run")
    shutil.copyfile(SMOKE, run / "params.yaml")
    build_dataset(stage_config(read_params(SMOKE), "data_synthesis", run_dir=run))
    build_tiny_policy(RunDir(run).tiny_policy)
    return run


# ---- the frame mapping -----------------------------------------------------------------------------------------------

def test_smoke_frames_map_to_frame_count_and_pixels():
    m = L.map_frames(FramePolicy.from_dict(read_params(SMOKE)["frames"]))
    assert m.model_args == {"min_pixels": 3136, "max_pixels": 3136, "max_num_frames": 4}
    assert m.env == {"MODEL_SEQ_LEN": "128000", "FORCE_QWENVL_VIDEO_READER": "decord"}
    assert m.frames["nframes"] == 4 and any(n.startswith("nframes") for n in m.notes)


def test_fps_policy_maps_to_fps_and_notes_what_lmms_eval_cannot_take():
    default = L.map_frames(FramePolicy())
    assert default.model_args == {"min_pixels": 128 * 28 * 28, "max_pixels": 768 * 28 * 28, "fps": 2.0}
    assert not any("min_frames" in n or "MODEL_SEQ_LEN=" in n or "backend" in n for n in default.notes)
    odd = L.map_frames(FramePolicy(fps=1.0, min_frames=8, total_pixels=1_000_000, backend="pyav"))
    assert odd.model_args["fps"] == 1.0 and odd.env["MODEL_SEQ_LEN"] == str(int(1_000_000 / (28 * 28 * 0.9)))
    assert [n.split("=")[0].split(" ")[0] for n in odd.notes[:3]] == ["min_frames", "total_pixels", "backend"]
    assert L.map_frames(FramePolicy(nframes=7)).model_args["max_num_frames"] == 8  # rounded to even, as the kit


def test_command_names_the_policy_frames_length_and_offline_environment(tmp_path):
    spec = L.LmmsRun(policy=tmp_path / "pol", tasks=["vvkit", "videomme"], out=tmp_path / "out",
                     frames=FramePolicy(nframes=4, min_pixels=3136, max_pixels=3136), max_new_tokens=1024,
                     include_path=tmp_path / "tasks", limit=2, hf_home=tmp_path / "hf", python=sys.executable)
    cmd = spec.command()
    assert cmd[:3] == [sys.executable, "-m", "vvkit.lmms_entry"]  # lmms_eval with the kit's M-RoPE rule
    args = {flag: cmd[i + 1] for i, flag in enumerate(cmd) if flag.startswith("--") and flag != "--log_samples"}
    assert args["--model"] == "qwen2_5_vl" and args["--tasks"] == "vvkit,videomme"
    assert args["--model_args"] == (f"pretrained={tmp_path / 'pol'},device_map=cpu,min_pixels=3136,max_pixels=3136,"
                                    f"max_num_frames=4")
    assert args["--gen_kwargs"] == "max_new_tokens=1024" and args["--limit"] == "2"
    assert args["--include_path"] == str(tmp_path / "tasks") and "--log_samples" in cmd
    gpu = L.LmmsRun(policy=tmp_path, tasks=["videomme"], out=tmp_path, frames=FramePolicy(), device="cuda:0",
                    python=sys.executable).command()
    assert gpu[gpu.index("--device") + 1] == "cuda:0" and ",device_map=cuda:0," in gpu[gpu.index("--model_args") + 1]
    env = spec.environment()
    assert env["HF_HUB_OFFLINE"] == env["HF_DATASETS_OFFLINE"] == "1" and env["HF_HOME"] == str(tmp_path / "hf")
    assert env["MODEL_SEQ_LEN"] == "128000"


# ---- running lmms-eval: a stand-in interpreter -----------------------------------------------------------------------

def _stand_in(tmp_path: Path, body: str) -> str:
    """An executable that takes lmms-eval's command line and runs `body` (bash), exiting 0 like lmms-eval does."""
    exe = tmp_path / "fake-python"
    exe.write_text("#!/usr/bin/env bash\nout=\"\"\nwhile [ $# -gt 0 ]; do [ \"$1\" = --output_path ] && out=$2; "
                   f"shift; done\n{body}\nexit 0\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return str(exe)


def _policy(tmp_path: Path) -> Path:
    folder = tmp_path / "policy"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text("{}")
    return folder


def test_a_run_that_writes_no_results_is_an_error_with_the_log(tmp_path):
    fake = _stand_in(tmp_path, 'echo "Traceback: ValueError: video path does not exist"')
    spec = L.LmmsRun(policy=_policy(tmp_path), tasks=["videomme"], out=tmp_path / "out", frames=FramePolicy(),
                     python=fake)
    with pytest.raises(L.LmmsEvalError, match="(?s)wrote no results.*exit status 0.*video path does not exist"):
        L.run_lmms_eval(spec)
    assert json.loads((tmp_path / "out" / L.MAPPING_FILE).read_text())["mapping"]["model_args"]["fps"] == 2.0


def test_results_are_read_back_into_the_summary(tmp_path):
    results = {"results": {"vvkit_mcq": {"alias": "vvkit_mcq", "accuracy,none": 0.5, "accuracy_stderr,none": "N/A"}}}
    fake = _stand_in(tmp_path, f"mkdir -p $out/m && echo '{json.dumps(results)}' > $out/m/2026_results.json")
    spec = L.LmmsRun(policy=_policy(tmp_path), tasks=["vvkit_mcq"], out=tmp_path / "out", frames=FramePolicy(),
                     python=fake)
    summary = L.run_lmms_eval(spec)
    assert summary["results"] == {"vvkit_mcq": {"accuracy": 0.5, "accuracy_stderr": "N/A"}}
    assert summary["results_file"] == "m/2026_results.json" and summary["exit_status"] == 0
    assert json.loads((tmp_path / "out" / L.SUMMARY_FILE).read_text())["results"] == summary["results"]
    with pytest.raises(L.LmmsEvalError, match="no 'results'"):
        (tmp_path / "empty.json").write_text("{}")
        L.read_results(tmp_path / "empty.json")


def test_a_task_missing_from_the_results_is_an_error(tmp_path):
    results = {"results": {"videomme": {"videomme_perception_score,none": 0.0}},
               "group_subtasks": {"videomme": [], "vvkit": ["vvkit_mcq", "vvkit_caption"]}}
    (tmp_path / "r.json").write_text(json.dumps(results))
    assert L.read_results(tmp_path / "r.json", ["videomme"]) == {"videomme": {"videomme_perception_score": 0.0}}
    with pytest.raises(L.LmmsEvalError, match=r"no results for \['vvkit_mcq', 'vvkit_caption'\]"):
        L.read_results(tmp_path / "r.json", ["videomme", "vvkit"])


def test_an_adapter_without_merged_weights_is_refused(tmp_path):
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(L.LmmsEvalError, match="merge_adapter"):
        L.check_policy_folder(tmp_path)


def test_a_run_policy_takes_the_runs_frames_and_length_and_files_results_in_the_run(smoke_run):
    spec = L.run_spec(smoke_run, "base", ["vvkit_mcq", "videomme"])
    assert spec.policy == RunDir(smoke_run).tiny_policy and spec.max_new_tokens == 8
    assert spec.frames == FramePolicy.from_dict(read_params(SMOKE)["frames"])
    assert spec.out == RunDir(smoke_run).lmms_eval("base", "vvkit_mcq+videomme")
    assert spec.out == smoke_run / "eval" / "base" / "lmms_eval" / "vvkit_mcq+videomme"
    assert L.run_spec(None, str(smoke_run), ["x"], out=smoke_run / "o").frames == FramePolicy()


def test_cli_reports_a_missing_interpreter(tmp_path, capsys):
    assert cli.main(["lmms-eval", "--tasks", "videomme", "--policy", str(_policy(tmp_path)), "--out",
                     str(tmp_path / "o"), "--python", str(tmp_path / "nope")]) == 2
    assert "no such interpreter" in capsys.readouterr().err


# ---- the exporter ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def exported(smoke_run):
    """The smoke run's train split (every task, DarkEventInfer and MixVidQA included) exported as lmms-eval tasks."""
    tasks = T.export_run_tasks(smoke_run, smoke_run / "exported", split="train")
    return smoke_run, tasks


def test_every_task_of_the_split_becomes_a_task_folder_and_the_group_lists_them(exported):
    run, tasks = exported
    rows = load_rows(RunDir(run).rows("train"))
    assert [t.task for t in tasks] == [t for t in ("dark_event", "mixvid", "mcq", "open_ended", "caption")
                                       if any(r.problem_type == t for r in rows)]
    assert {"dark_event", "mixvid"} <= {t.task for t in tasks}
    group = yaml.safe_load((run / "exported" / "vvkit.yaml").read_text())
    assert group == {"group": "vvkit", "task": [t.name for t in tasks]}
    for t in tasks:
        cfg = yaml.load((t.folder / f"{t.name}.yaml").read_text(), Loader=_Loader)
        assert cfg["task"] == t.name and cfg["dataset_path"] == "json" and cfg["reasoning_tags"] == "none"
        assert Path(cfg["dataset_kwargs"]["data_files"]["test"]) == t.folder / T.DATA_FILE
        assert cfg["generation_kwargs"]["max_new_tokens"] == 8  # the run's analysis.max_new_tokens
        assert [m["metric"] for m in cfg["metric_list"]] == list(T.TASK_METRICS[t.task])
        docs = [json.loads(x) for x in (t.folder / T.DATA_FILE).read_text().splitlines()]
        assert len(docs) == t.n_rows == sum(r.problem_type == t.task for r in rows)
        assert all((t.folder / d["video"]).is_file() and d["prompt"].endswith("</answer>.") for d in docs)
        settings = json.loads((t.folder / T.SETTINGS_FILE).read_text())
        assert settings["rewards"]["judge"] == "offline" and settings["prompt_style"] == "reason"


def test_the_template_defines_every_aggregation_the_yaml_names():
    import vvkit.lmms_template.utils as U

    for metrics in T.TASK_METRICS.values():
        assert all(callable(getattr(U, f"aggregate_{m}")) for m in metrics)


def test_exported_videos_carry_the_edits(exported):
    """A DarkEventInfer mask and a MixVidQA interleave, read from the exported mp4, give the frames the kit reads
    lazily from the source (up to re-encoding)."""
    run, tasks = exported
    policy = FramePolicy(nframes=8, min_pixels=3136, max_pixels=3136, timeout_s=0)
    for t in (t for t in tasks if t.task in ("dark_event", "mixvid")):
        doc = json.loads((t.folder / T.DATA_FILE).read_text().splitlines()[0])
        row = next(r for r in load_rows(RunDir(run).rows("train")) if r.id == doc["id"])
        assert row.edits, row.id
        lazy = read_video(row.video, policy, edits=row.edits).frames.astype(int)
        written = read_video(str(t.folder / doc["video"]), policy).frames.astype(int)
        assert lazy.shape == written.shape and np.abs(lazy - written).mean() < 4
        if t.task == "dark_event":
            black = lazy.reshape(len(lazy), -1).max(1) == 0
            assert black.any() and (written.reshape(len(written), -1).max(1)[black] < 24).all()


def test_an_exported_doc_scores_as_the_kit_scores_its_row(exported):
    run, tasks = exported
    t = next(t for t in tasks if t.task == "dark_event")
    doc = json.loads((t.folder / T.DATA_FILE).read_text().splitlines()[0])
    row = next(r for r in load_rows(RunDir(run).rows("train")) if r.id == doc["id"])
    text = f"<think>before and after</think><answer>{row.solution}</answer>"
    out = T.process_results(t.folder, doc, [text])
    assert set(out) == set(T.TASK_METRICS["dark_event"])
    rec = out["score_mean"]
    kit = score_rows([text], [row], stage_config(read_params(SMOKE), "analysis").reward_config(), reading="any")[0]
    assert (rec["score"], rec["format"]) == (kit["score"], kit["format"]) == (2.0, 1.0)
    assert T.aggregate([rec, {**rec, "score": 0.0}], "score_mean") == 1.0
    assert T.aggregate([rec, {**rec, "score": 0.0}], "score_sum") == 2.0


def test_windowed_rows_are_refused_by_name(smoke_run, tmp_path):
    row = load_rows(RunDir(smoke_run).rows("test"))[0]
    row.meta["window"] = [0.0, 1.0]
    with pytest.raises(ValueError, match=f"{row.id}.*window"):
        T.export_tasks([row], tmp_path)


def test_a_re_export_replaces_its_folders_and_plain_videos_are_shared(smoke_run, tmp_path):
    rows = [r for r in load_rows(RunDir(smoke_run).rows("train")) if r.problem_type == "mcq" and not r.edits]
    assert len({r.video for r in rows}) < len(rows)  # several questions about one video
    (task,) = T.export_tasks(rows, tmp_path)
    (task.folder / "videos" / "stale.mp4").write_bytes(b"")
    (task,) = T.export_tasks(rows, tmp_path)
    names = [p.name for p in (task.folder / "videos").iterdir()]
    assert "stale.mp4" not in names and len(names) == len({r.video for r in rows})
    (tmp_path / "other" / "vvkit_mcq").mkdir(parents=True)
    (tmp_path / "other" / "vvkit_mcq" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds no vvkit_task.json"):
        T.export_tasks(rows, tmp_path / "other")


def test_cli_exports_a_runs_test_split(smoke_run, capsys):
    assert cli.main(["lmms-tasks", "--run", str(smoke_run)]) == 0
    out = capsys.readouterr().out
    assert "vvkit_mcq:" in out and f"--include_path {RunDir(smoke_run).lmms_tasks}" in out
    assert (RunDir(smoke_run).lmms_tasks / "vvkit.yaml").is_file()


# ---- lmms-eval itself (.venv-lmms) -----------------------------------------------------------------------------------

# The kit's answer cases (tests/test_mcq_choice.py): lmms-eval's reader agrees with the kit's on this many of them,
# and every case they read differently is listed in docs/lmms_eval.md with the right reading.
PARITY_AGREE = 31  # of 49


@needs_lmms
def test_reading_parity_on_the_kits_answer_cases():
    from test_mcq_choice import CASES

    parity = T.reading_parity([c[0] for c in CASES], [c[1] for c in CASES], [c[2] for c in CASES])
    for d in parity.disagreements:
        print(repr(d["text"]), "kit", d["kit"], "lmms", d["lmms"], "expected", d["expected"])
    print(parity.n, parity.agree)
    assert all(d["kit"] == d["expected"] for d in parity.disagreements)  # the cases are the kit's labels
    assert parity.agree == PARITY_AGREE


def _videomme_copy(rows, root: Path) -> tuple[Path, Path]:
    """The kit's multiple-choice rows in Video-MME's published layout, as lmms-eval's stock `videomme` task reads it
    from local files: <data_root>/lmms-eval/Video-MME/videomme/*.parquet and <hf_home>/videomme/data/<videoID>.mp4."""
    import pandas as pd

    ann, videos = root / "data" / "lmms-eval" / "Video-MME" / "videomme", root / "hf" / "videomme" / "data"
    ann.mkdir(parents=True)
    videos.mkdir(parents=True)
    recs = []
    for i, r in enumerate(rows):
        shutil.copyfile(r.video, videos / f"toy{i:03d}.mp4")
        recs.append(dict(video_id=f"{i:03d}", duration="short", domain="Knowledge", url="",
                         sub_category="Humanity & History", videoID=f"toy{i:03d}", question_id=f"{i:03d}-1",
                         task_type="Attribute Perception", question=r.problem, options=list(r.options),
                         answer=r.solution))
    pd.DataFrame(recs).to_parquet(ann / "test-00000-of-00001.parquet")
    return root / "data", root / "hf"


_FRAMES_SCRIPT = """
import json, sys
from lmms_eval.protocol import ChatMessages
from qwen_vl_utils import process_vision_info
import decord
video, args = sys.argv[1], json.loads(sys.argv[2])
# lmms-eval 0.7.3 lmms_eval/models/chat/qwen2_5_vl.py: fps when given, else nframes = min(max_num_frames, frames)
kwargs = {"max_pixels": args["max_pixels"], "min_pixels": args["min_pixels"]}
if "fps" in args:
    kwargs["fps"] = args["fps"]
else:
    kwargs["nframes"] = max(2, min(args["max_num_frames"], len(decord.VideoReader(video))) // 2 * 2)
msgs = ChatMessages(messages=[{"role": "user", "content": [{"type": "video", "url": video},
                                                           {"type": "text", "text": "q"}]}]).to_hf_messages(kwargs)
_, videos, _ = process_vision_info(msgs, return_video_kwargs=True, return_video_metadata=True)
frames, meta = videos[0]
print(json.dumps({"shape": list(frames.shape), "indices": [int(i) for i in meta["frames_indices"]],
                  "sampled_fps": len(meta["frames_indices"]) / meta["total_num_frames"] * meta["fps"]}))
"""


@needs_lmms
@pytest.mark.parametrize("frames", [
    {"nframes": 4, "min_pixels": 3136, "max_pixels": 3136},            # the smoke preset
    {"fps": 2.0, "min_pixels": 784, "max_pixels": 3136},                # the fps rule
    {"nframes": 4, "min_pixels": 784, "max_pixels": 12544, "total_pixels": 3528},  # the clip budget binds: 28x28
], ids=["smoke", "fps", "total_pixels"])
def test_lmms_eval_samples_the_frames_the_kit_samples(smoke_run, frames):
    """lmms-eval's model, given the mapped arguments and environment, takes the same frames at the same size and
    sampled fps (M-RoPE's time axis) as `vvkit.video.read_video` under the kit's frame policy."""
    import subprocess

    policy = FramePolicy.from_dict({**frames, "timeout_s": 0})
    video = load_rows(RunDir(smoke_run).rows("test"))[0].video
    m = L.map_frames(policy)
    got = json.loads(subprocess.run([sys.executable, "-c", _FRAMES_SCRIPT, video, json.dumps(m.model_args)],
                                    env={**os.environ, **m.env}, capture_output=True, text=True, check=True
                                    ).stdout.strip().splitlines()[-1])
    clip = read_video(video, policy)
    assert got["shape"][0] == len(clip.frames) and got["shape"][2:] == list(clip.frames.shape[1:3])
    assert got["indices"] == clip.indices.tolist()
    assert got["sampled_fps"] == pytest.approx(clip.sampled_fps)


@needs_lmms
def test_smoke_lmms_eval_scores_the_tiny_policy_on_kit_tasks_and_a_stock_task(smoke_run, tmp_path, capsys):
    """From the smoke run: `vvkit lmms-eval` exports the run's test split, and lmms-eval scores the tiny policy on an
    exported multiple-choice task, an exported DarkEventInfer task (the train split: the smoke test split has none)
    and the stock `videomme` task read from local files; the results file exists and is read back."""
    run = RunDir(smoke_run)
    T.export_run_tasks(smoke_run, run.lmms_tasks, split="train", prefix="vvkit_train")
    data_root, hf_home = _videomme_copy([r for r in load_rows(run.rows("test")) if r.problem_type == "mcq"], tmp_path)
    tasks = ["vvkit_mcq", "vvkit_train_dark_event", "videomme"]
    assert cli.main(["lmms-eval", "--run", str(smoke_run), "--policy", "base", "--tasks", ",".join(tasks),
                     "--limit", "2", "--data-root", str(data_root), "--hf-home", str(hf_home)]) == 0, \
        capsys.readouterr().err
    out = run.lmms_eval("base", "+".join(tasks))
    summary = json.loads((out / L.SUMMARY_FILE).read_text())
    results = L.read_results(out / summary["results_file"])
    assert results == summary["results"] and set(results) == set(tasks)
    assert 0 <= results["vvkit_mcq"]["accuracy"] <= 1 and 0 <= results["vvkit_mcq"]["reading_agreement"] <= 1
    assert 0 <= results["vvkit_train_dark_event"]["score_mean"] <= 2
    assert 0 <= results["videomme"]["videomme_perception_score"] <= 100
    assert summary["mapping"]["model_args"] == {"min_pixels": 3136, "max_pixels": 3136, "max_num_frames": 4}
    assert "max_new_tokens=8" in summary["command"]
    # each logged completion scores as the kit's own scorer scores it
    samples = [json.loads(x) for x in next((out / Path(summary["results_file"]).parent).glob("*_samples_vvkit_mcq*"))
               .read_text().splitlines()]
    rows = {r.id: r for r in load_rows(run.rows("test"))}
    assert len(samples) == 2
    for s in samples:
        rec = s["accuracy"]
        row = rows[rec["id"]]
        kit = score_rows([rec["completion"]], [row], stage_config(read_params(SMOKE), "analysis").reward_config(),
                         reading="any")[0]
        assert (rec["score"], rec["choice"], rec["format"]) == (kit["score"], kit["choice"], kit["format"])
        assert rec["lmms_choice"] == T.lmms_reading(rec["completion"], "ABCD"[:len(row.options)])
