"""vvkit.video / decode / videowrite: sampling rules against hand-computed tables, decoding of self-describing videos,
edits, errors, and the decoder process's lifecycle."""
from __future__ import annotations

import json
import math
import os
import pickle
import signal
import struct
import subprocess
import threading
import time
from collections import Counter

import av
import numpy as np
import pytest

from vvkit import decode, video
from vvkit.video import (Clip, FramePolicy, VideoError, VideoWriter, frame_pixel_cap, frame_size, materialize,
                         read_video, smart_nframes, smart_resize, trusted_frame_count, write_video)

BACKENDS = ["decord", "pyav"]
GRID = 4              # frames carry a 4x4 grid of black/white cells: 10 bits of frame index, 2 of source id, 4 guard
GUARD = [1, 0, 1, 0]
A_FPS, A_N = 30, 60   # source 0: 56x56, 2 s
B_FPS, B_N = 25, 50   # source 1: 56 high x 84 wide, 2 s
# keeps 56x56 and 56x84 frames at their size (both are multiples of 28 within the pixel bounds)
SMALL = dict(min_pixels=28 * 28, max_pixels=56 * 84)


def pattern(index: int, source: int, h: int, w: int) -> np.ndarray:
    bits = [(index >> k) & 1 for k in range(10)] + [(source >> k) & 1 for k in range(2)] + GUARD
    cells = np.array(bits, np.uint8).reshape(GRID, GRID) * 220 + 16
    return np.repeat(np.repeat(cells, h // GRID, 0), w // GRID, 1)[:, :, None].repeat(3, 2)


def read_pattern(frame: np.ndarray) -> tuple[int, int] | None:
    """(index, source) of a pattern frame at any size, or None when the guard cells are wrong (e.g. black)."""
    h, w = frame.shape[:2]
    bits = []
    for r in range(GRID):
        for c in range(GRID):
            y, x, dy, dx = int((r + 0.5) * h / GRID), int((c + 0.5) * w / GRID), max(1, h // 16), max(1, w // 16)
            bits.append(int(frame[y - dy:y + dy, x - dx:x + dx].mean() > 128))
    if bits[12:] != GUARD:
        return None
    return sum(b << k for k, b in enumerate(bits[:10])), sum(b << k for k, b in enumerate(bits[10:12]))


def decoded(clip: Clip) -> list:
    return [read_pattern(f) for f in clip.frames]


def faststart_copy(src, dst) -> None:
    """Remux with the index (moov) first, so a truncated copy still opens and fails while reading frames."""
    with av.open(str(src)) as i, av.open(str(dst), "w", format="mp4", options={"movflags": "faststart"}) as o:
        s = o.add_stream_from_template(i.streams.video[0])
        for p in i.demux(i.streams.video[0]):
            if p.dts is not None:
                p.stream = s
                o.mux(p)


@pytest.fixture(scope="module")
def vids(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    a = write_video(np.stack([pattern(i, 0, 56, 56) for i in range(A_N)]), root / "a.mp4", A_FPS)
    b = write_video(np.stack([pattern(i, 1, 56, 84) for i in range(B_N)]), root / "b.mp4", B_FPS)
    tiny = write_video(np.full((10, 16, 16, 3), 128, np.uint8), root / "tiny.mp4", 10)
    rng = np.random.default_rng(0)
    noisy = write_video(rng.integers(0, 255, (30, 14, 14, 3), np.uint8).repeat(8, 1).repeat(8, 2), root / "n.mp4", 30)
    faststart_copy(noisy, root / "fs.mp4")
    data = (root / "fs.mp4").read_bytes()
    (root / "truncated.mp4").write_bytes(data[: int(len(data) * 0.6)])
    garbage = bytearray(data)
    lo, hi = int(len(data) * 0.3), int(len(data) * 0.9)
    garbage[lo:hi] = rng.integers(0, 256, hi - lo, dtype=np.uint8).tobytes()
    (root / "garbage.mp4").write_bytes(bytes(garbage))
    (root / "text.mp4").write_text("this is not a video\n" * 20)
    with av.open(str(root / "zero.mp4"), "w", options={"movflags": "frag_keyframe+empty_moov"}) as c:
        s = c.add_stream("libx264", rate=30)
        s.width = s.height = 56
        c.start_encoding()
    with av.open(str(root / "audio.mp4"), "w") as c:
        s = c.add_stream("aac", rate=16000)
        for k in range(4):
            f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            f.sample_rate, f.pts = 16000, k * 1024
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return {k: str(root / f"{k}.mp4") for k in
            ["a", "b", "tiny", "truncated", "garbage", "text", "zero", "audio"]} | {"root": root}


# ----------------------------------------------------------------------------------------------- FramePolicy

def test_policy_defaults_round_trip_and_strict_keys():
    p = FramePolicy()
    assert (p.fps, p.nframes, p.min_frames, p.max_frames) == (2.0, None, 4, 768)
    assert (p.min_pixels, p.max_pixels, p.total_pixels) == (100352, 602112, 90316800)
    assert (p.backend, p.timeout_s) == ("decord", 60.0)
    d = json.loads(json.dumps(p.to_dict()))
    assert FramePolicy.from_dict(d) == p
    assert FramePolicy.from_dict({"fps": 1, "backend": "pyav"}).fps == 1.0
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['fsp'\]"):
        FramePolicy.from_dict({"fsp": 2.0})


@pytest.mark.parametrize("kwargs, field", [
    ({"fps": 0}, "fps"), ({"fps": "2"}, "fps"), ({"nframes": 1}, "nframes"), ({"nframes": 8.0}, "nframes"),
    ({"min_frames": 0}, "min_frames"), ({"min_frames": 10, "max_frames": 8}, "min_frames"),
    ({"max_frames": True}, "max_frames"), ({"min_pixels": 0}, "min_pixels"),
    ({"min_pixels": 1000, "max_pixels": 999}, "min_pixels"), ({"total_pixels": -1}, "total_pixels"),
    ({"backend": "torchvision"}, "backend"), ({"timeout_s": -1}, "timeout_s")])
def test_policy_rejects_bad_values(kwargs, field):
    with pytest.raises(ValueError, match=field):
        FramePolicy(**kwargs)


# ----------------------------------------------------------------------------------------------- published rules

@pytest.mark.parametrize("kw, duration, fps, total, expected", [
    ({}, 10.0, 30, 300, 20),               # 10 s at 2 fps
    ({}, 1.0, 30, 30, 4),                  # 2 frames, raised to min_frames 4
    ({}, 0.1, 30, 3, 2),                   # min 4 capped by the 3 frames there are, floored to even
    ({}, 3600.0, 30, 108000, 768),         # an hour: capped by max_frames
    ({"fps": 1.0}, 7.5, 30, 225, 6),       # 7.5 floored to even
    ({"min_frames": 5}, 1.0, 30, 30, 6),   # min_frames rounds up to even
    ({"max_frames": 9}, 100.0, 30, 3000, 8),  # max_frames rounds down to even
    ({"nframes": 16}, 60.0, 30, 1800, 16),
    ({"nframes": 15}, 60.0, 30, 1800, 16),  # round(7.5) = 8 pairs
    ({"nframes": 13}, 60.0, 30, 1800, 12),  # round(6.5) = 6 pairs: Python rounds halves to even, like the reference
    ({"nframes": 3}, 1.0, 30, 30, 4),
])
def test_smart_nframes_table(kw, duration, fps, total, expected):
    assert smart_nframes(FramePolicy(**kw), duration, fps, total) == expected


def test_smart_nframes_refuses_too_few_frames():
    with pytest.raises(ValueError, match="only 1"):
        smart_nframes(FramePolicy(), 0.04, 25, 1)
    with pytest.raises(ValueError, match="needs 16 frames but only 10"):
        smart_nframes(FramePolicy(nframes=16), 1.0, 10, 10)


@pytest.mark.parametrize("hw, lo, hi, expected", [
    ((360, 640), 100352, 602112, (364, 644)),     # rounded to the nearest multiple of 28, within bounds
    ((56, 56), 100352, 602112, (336, 336)),       # scaled up to min_pixels: sqrt(32) * 56 / 28 = 11.3 -> 12
    ((1080, 1920), 100352, 602112, (560, 1008)),  # scaled down: beta = 1.8558, 20.8 -> 20, 36.9 -> 36 cells
    ((360, 640), 100352, 153664, (280, 504)),     # VersaVid's 196*28*28 cap: 10.5 -> 10, 18.7 -> 18 cells
    ((10, 10), 784, 602112, (28, 28)),            # tiny frames grow to one factor
    ((16, 16), 100352, 602112, (336, 336)),       # tiny frames, then up to min_pixels
    ((1, 200), 784, 10 ** 9, (28, 196)),          # aspect 200 is still accepted
    ((42, 42), 784, 10 ** 9, (56, 56)),           # round(1.5) = 2
    ((70, 70), 784, 10 ** 9, (56, 56)),           # round(2.5) = 2 (halves to even, like the reference)
])
def test_smart_resize_table(hw, lo, hi, expected):
    assert smart_resize(*hw, 28, lo, hi) == expected


def test_smart_resize_refuses_extreme_aspect():
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(1, 201)


def test_frame_pixel_cap_and_size():
    p = FramePolicy()
    assert frame_pixel_cap(p, 16) == 602112                     # budget / 16 * 2 is far above max_pixels
    assert frame_pixel_cap(p, 768) == 235200                    # 90316800 / 768 * 2
    assert frame_pixel_cap(FramePolicy(total_pixels=1000), 8) == 105369   # floor: int(min_pixels * 1.05)
    assert frame_size(p, 360, 640, 768) == (364, 644)          # 234416 <= 235200
    assert frame_size(p, 1080, 1920, 768) == (336, 644)        # beta = 2.9692: 12.99 -> 12, 23.09 -> 23 cells


def test_trusted_frame_count():
    assert trusted_frame_count(300, 300, 10.0, 30.0) == 300
    assert trusted_frame_count(431, 300, 10.0, 30.0) == 300     # decord over-reports: take the container's count
    assert trusted_frame_count(431, 431, 10.0, 30.0) == 300     # duration cannot hold 431 frames at 30 fps
    assert trusted_frame_count(301, 301, 10.0, 30.0) == 301     # rounding slack keeps the last frame
    assert trusted_frame_count(50, 0, None, 25.0) == 50


# ----------------------------------------------------------------------------------------------- decoding

@pytest.mark.parametrize("backend", BACKENDS)
def test_decodes_exactly_the_sampled_frames(vids, backend):
    clip = read_video(vids["a"], FramePolicy(nframes=8, backend=backend, **SMALL))
    expected = [0, 8, 17, 25, 34, 42, 51, 59]                 # round(linspace(0, 59, 8))
    assert clip.indices.tolist() == expected
    assert decoded(clip) == [(i, 0) for i in expected]
    assert np.allclose(clip.timestamps, np.array(expected) / A_FPS, atol=1e-5)
    assert clip.frames.shape == (8, 56, 56, 3) and clip.frames.dtype == np.uint8
    assert (clip.sampled_fps, clip.duration, clip.source_fps) == (4.0, 2.0, 30.0)
    assert (clip.source_size, clip.backend, clip.path, clip.sources) == ((56, 56), backend, vids["a"], None)


def test_backends_and_in_process_agree(vids):
    clips = {(b, t): read_video(vids["b"], FramePolicy(nframes=6, backend=b, timeout_s=t, **SMALL))
             for b in BACKENDS for t in (0.0, 30.0)}
    ref = clips[("decord", 30.0)]
    assert decoded(ref) == [(i, 1) for i in [0, 10, 20, 29, 39, 49]]
    for (b, t), c in clips.items():
        assert c.indices.tolist() == ref.indices.tolist() and np.allclose(c.timestamps, ref.timestamps)
        assert np.abs(c.frames.astype(int) - ref.frames).mean() < 2.0
        assert np.array_equal(c.frames, clips[(b, 0.0)].frames)  # the decoder process changes nothing


@pytest.mark.parametrize("backend", BACKENDS)
def test_fps_rule_window_and_resize(vids, backend):
    clip = read_video(vids["a"], FramePolicy(backend=backend), start=0.5, end=1.5)
    # frames ceil(15)..floor(45): 31 frames, 1.03 s -> 2 at 2 fps -> min_frames 4; default pixels -> 336x336
    assert clip.indices.tolist() == [15, 25, 35, 45] and decoded(clip) == [(i, 0) for i in [15, 25, 35, 45]]
    assert clip.frames.shape == (4, 336, 336, 3)
    with pytest.raises(VideoError, match="fewer than 2 frames"):
        read_video(vids["a"], FramePolicy(backend=backend), start=1.0, end=1.0)


def test_tiny_frames_are_upsized(vids):
    clip = read_video(vids["tiny"], FramePolicy(backend="pyav"))
    assert clip.frames.shape == (4, 336, 336, 3) and abs(float(clip.frames.mean()) - 128) < 3


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, words", [
    ("missing", "no such video file"), ("text", "not a readable video container"), ("zero", "zero frames"),
    ("audio", "no video stream"), ("truncated", "truncated or corrupt"), ("garbage", "corrupt")])
def test_errors_name_the_file(vids, backend, name, words):
    path = vids.get(name, str(vids["root"] / "missing.mp4"))
    with pytest.raises(VideoError, match=words) as e:
        read_video(path, FramePolicy(nframes=4, backend=backend, timeout_s=20))
    assert path in str(e.value)


def test_too_few_frames_is_an_error(vids):
    with pytest.raises(VideoError, match=r"tiny\.mp4: needs 12 frames but only 10"):
        read_video(vids["tiny"], FramePolicy(nframes=12, backend="pyav"))


def test_deadline_stops_a_hung_decoder(vids):
    with pytest.raises(VideoError, match=r"stuck\.mp4: decoding did not finish within"):
        decode.run_task(0.5, "stuck.mp4", "sleep", 30)
    assert decoded(read_video(vids["a"], FramePolicy(nframes=2, **SMALL))) == [(0, 0), (59, 0)]  # fresh decoder process


def fresh_worker(vids) -> subprocess.Popen:
    """Start a new decoder process (under the test's stderr capture) and return it once it has answered a read."""
    decode._close_proc()
    read_video(vids["a"], FramePolicy(nframes=2, **SMALL))
    return decode._PROC.proc


def test_worker_exits_quietly_on_sigint_and_is_replaced(vids, capfd):
    proc = fresh_worker(vids)
    os.kill(proc.pid, signal.SIGINT)            # what a notebook kernel shutting down sends its process group
    assert proc.wait(10) == -signal.SIGINT
    assert capfd.readouterr().err == ""         # no KeyboardInterrupt traceback
    assert decoded(read_video(vids["a"], FramePolicy(nframes=2, **SMALL))) == [(0, 0), (59, 0)]
    assert decode._PROC.proc.pid != proc.pid    # the ended idle process was replaced, not reported as a failure


def test_worker_exits_quietly_when_the_parent_goes(vids, capfd):
    proc = fresh_worker(vids)
    proc.stdin.close()                          # the parent's end of the pipe closes when the parent exits
    assert proc.wait(10) == 0
    assert capfd.readouterr().err == ""
    decode._close_proc()


def kill_mid_call(worker) -> None:
    calls = worker.calls
    while worker.calls == calls:                # the next call has passed run_task's liveness check
        time.sleep(0.01)
    os.kill(worker.proc.pid, signal.SIGKILL)


def test_worker_still_reports_real_errors(vids, capfd):
    proc = fresh_worker(vids)
    with pytest.raises(VideoError, match=r"x\.mp4: KeyError: 'nosuch'"):
        decode.run_task(30.0, "x.mp4", "nosuch")    # a failing task is answered and the process lives on
    assert decode._PROC.proc is proc and proc.poll() is None
    threading.Thread(target=kill_mid_call, args=(decode._PROC,), daemon=True).start()
    with pytest.raises(VideoError, match=r"x\.mp4: the decoding process died \(killed by SIGKILL\)"):
        decode.run_task(30.0, "x.mp4", "sleep", 20)
    proc = fresh_worker(vids)
    os.write(proc.stdin.fileno(), struct.pack("<2Q", 0, 4) + b"junk")   # a message that is not a pickle
    assert proc.wait(10) == 1
    assert "UnpicklingError" in capfd.readouterr().err    # a broken protocol stays loud, not a quiet exit
    decode._close_proc()


# ----------------------------------------------------------------------------------------------- edits

@pytest.mark.parametrize("backend", BACKENDS)
def test_each_source_is_opened_once_per_read(vids, backend, monkeypatch):
    opened = Counter()
    header = decode._header
    monkeypatch.setattr(decode, "_header", lambda path, demux: opened.update([path]) or header(path, demux))
    if backend == "decord":
        import decord
        reader = decord.VideoReader
        monkeypatch.setattr(decord, "VideoReader", lambda path, **kw: opened.update([path]) or reader(path, **kw))
    pol = FramePolicy(nframes=8, backend=backend, timeout_s=0, **SMALL)      # in-process, so the patches apply
    read_video([vids["a"], vids["b"]], pol, edits={"interleave": [[0, 0.0, 0.8], [1, 0.4, 1.2], [0, 1.0, 1.6]]})
    per_read = 2 if backend == "decord" else 1                             # container header (+ decord's reader)
    assert opened == {vids["a"]: per_read, vids["b"]: per_read}
    read_video(vids["b"], pol)
    assert opened[vids["b"]] == 2 * per_read

@pytest.mark.parametrize("backend", BACKENDS)
def test_mask_blacks_out_only_the_span(vids, backend):
    pol = FramePolicy(nframes=8, backend=backend, **SMALL)
    clip = read_video(vids["a"], pol, edits={"mask": [[0.5, 1.2]]})
    assert clip.indices.tolist() == read_video(vids["a"], pol).indices.tolist()
    inside = (clip.timestamps >= 0.5) & (clip.timestamps < 1.2)
    assert clip.indices[inside].tolist() == [17, 25, 34]
    assert clip.frames[inside].max() == 0
    assert decoded(clip)[:2] + decoded(clip)[5:] == [(i, 0) for i in [0, 8, 42, 51, 59]]


def expected_timeline(chunks):
    """Every frame of the interleaved timeline, written out from the chunk definitions."""
    fps, out, offset = {0: A_FPS, 1: B_FPS}, [], 0.0
    for src, s, e in chunks:
        out += [(src, i, offset + i / fps[src] - s) for i in range(A_N if src == 0 else B_N) if s <= i / fps[src] < e]
        offset += e - s
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_interleave_pulls_each_frame_from_its_source(vids, backend):
    chunks = [[1, 0.4, 1.2], [0, 1.0, 1.6], [1, 0.0, 0.4]]
    clip = read_video([vids["a"], vids["b"]], FramePolicy(nframes=12, backend=backend, **SMALL),
                      edits={"interleave": chunks})
    timeline = expected_timeline(chunks)                           # 20 + 18 + 10 frames over 1.8 s
    want = [timeline[p] for p in np.round(np.linspace(0, len(timeline) - 1, 12)).astype(int)]
    assert decoded(clip) == [(i, s) for s, i, _ in want]           # source 1 is resized from 56x84 to 56x56
    assert clip.sources.tolist() == [s for s, _, _ in want] and clip.indices.tolist() == [i for _, i, _ in want]
    assert np.allclose(clip.timestamps, [t for _, _, t in want], atol=1e-5)
    assert clip.frames.shape == (12, 56, 56, 3) and clip.path == [vids["a"], vids["b"]]
    assert math.isclose(clip.duration, 1.8) and math.isclose(clip.sampled_fps, 12 / 1.8)


@pytest.mark.parametrize("path_key, edits, kw, words", [
    ("a", {"blur": []}, {}, r"unknown edit key\(s\) \['blur'\]"),
    ("a", {"mask": [[1.0, 0.5]]}, {}, r"mask'\]\[0\]: span \[1.0, 0.5\]"),
    ("a", {"mask": [[0.1]]}, {}, "expected 2 numbers"),
    ("a", "mask", {}, "edits must be a dict"),
    ("ab", {"interleave": [[2, 0.0, 1.0]]}, {}, "source index 2 is out of range"),
    ("ab", {}, {}, "needs an 'interleave' edit"),
    ("ab", {"interleave": [[0, 1.0, 2.5]]}, {}, "ends at 2.5 s but source 0 lasts 2.000 s"),
    ("ab", {"interleave": [[0, 0.0, 1.0]]}, {"start": 0.5}, "cannot be combined with interleave"),
])
def test_bad_edits_are_explained(vids, path_key, edits, kw, words):
    path = [vids["a"], vids["b"]] if path_key == "ab" else vids[path_key]
    with pytest.raises(VideoError, match=words) as e:
        read_video(path, FramePolicy(nframes=4, **SMALL), edits=edits, **kw)
    assert vids["a"] in str(e.value)


# ----------------------------------------------------------------------------------------------- writing

def test_write_video_is_atomic_and_checks_frames(vids, tmp_path):
    frames = np.stack([pattern(i, 2, 56, 56) for i in range(6)])
    out = write_video(frames, tmp_path / "w.mp4", 6)
    assert decoded(read_video(str(out), FramePolicy(nframes=6, backend="pyav", **SMALL))) == [(i, 2) for i in range(6)]
    with pytest.raises(VideoError, match="even height and width, got 57x56"):
        write_video(np.zeros((2, 57, 56, 3), np.uint8), tmp_path / "odd.mp4", 6)
    padded = write_video(np.zeros((2, 57, 56, 3), np.uint8), tmp_path / "odd.mp4", 6, pad=True)
    assert read_video(str(padded), FramePolicy(nframes=2, backend="pyav", min_pixels=784, max_pixels=58 * 56,
                                               timeout_s=0)).source_size == (58, 56)
    with pytest.raises(VideoError, match="uint8"):
        write_video(frames.astype(np.float32), tmp_path / "f.mp4", 6)
    with pytest.raises(RuntimeError), VideoWriter(tmp_path / "broken.mp4", 6) as w:
        w.write(frames[:2])
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.mp4", "w.mp4"]   # no temp files, no broken.mp4


def test_materialize_mask_interleave_and_fps(vids, tmp_path):
    pol = dict(backend="pyav", **SMALL)
    masked = materialize(vids["a"], {"mask": [[0.5, 1.0]]}, tmp_path / "m.mp4")
    got = decoded(read_video(str(masked), FramePolicy(nframes=A_N, **pol)))
    assert got == [None if 15 <= i < 30 else (i, 0) for i in range(A_N)]
    chunks = [[1, 0.4, 1.2], [0, 1.0, 1.6], [1, 0.0, 0.4]]
    mixed = materialize([vids["a"], vids["b"]], {"interleave": chunks}, tmp_path / "i.mp4")
    clip = read_video(str(mixed), FramePolicy(nframes=48, **pol))
    assert decoded(clip) == [(i, s) for s, i, _ in expected_timeline(chunks)] and clip.source_size == (56, 56)
    slow = materialize(vids["a"], None, tmp_path / "s.mp4", fps=10)
    clip = read_video(str(slow), FramePolicy(nframes=20, **pol))
    assert decoded(clip) == [(3 * k, 0) for k in range(20)] and clip.source_fps == 10.0
