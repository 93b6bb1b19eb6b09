"""vvkit against stock parts nobody here wrote, used as oracles.

- transformers' `Qwen2_5_VLProcessor` + `Qwen2VLVideoProcessor`, built here from a folder in the file layout of a hub
  Qwen2.5-VL checkpoint (its preprocessor_config.json values and its chat_template.json), against
  `vvkit.processing.get_processor` / `vvkit.model.load_policy`: same video tensors, same `<|video_pad|>` count, same
  M-RoPE positions;
- the Qwen2.5-VL chat template (the checkpoint's chat_template.json) against vvkit's Arrow-safe template;
- qwen-vl-utils 0.0.10 (`smart_nframes`, `smart_resize`, `fetch_video`) against `vvkit.video.FramePolicy`.
"""
import json
import shutil
import warnings
from pathlib import Path

import datasets
import numpy as np
import pytest
import qwen_vl_utils.vision_process as qvu
import torch
from transformers import AutoTokenizer, Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor
from transformers.video_utils import VideoMetadata

from vvkit.model import build_tiny_policy, load_policy
from vvkit.processing import CHAT_TEMPLATE, get_processor, video_metadata
from vvkit.video import FramePolicy, VideoError, frame_size, read_video, smart_nframes, smart_resize, write_video


CORPUS = ["What colour is the shape? A. blue B. white C. green D. purple", "You are a helpful assistant.",
          "<think>the shape is red</think><answer>B</answer>", "Describe this video in detail."] * 4

# Qwen/Qwen2.5-VL-7B-Instruct: preprocessor_config.json and the template in chat_template.json, as the hub ships them.
HUB_PREPROCESSOR = {"min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2,
                    "merge_size": 2, "image_mean": [0.48145466, 0.4578275, 0.40821073],
                    "image_std": [0.26862954, 0.26130258, 0.27577711], "image_processor_type": "Qwen2VLImageProcessor",
                    "processor_class": "Qwen2_5_VLProcessor"}
STOCK_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in "
    "content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] "
    "== 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content "
    "%}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% endif %}")
DEFAULT_SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
HUB_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
SYSTEM = {"role": "system", "content": "You are a helpful assistant."}


def _video(t, h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def _question(n_videos=1, text="What colour is the shape?"):
    return {"role": "user", "content": [{"type": "video"}] * n_videos + [{"type": "text", "text": text}]}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_policy(tmp_path_factory.mktemp("stock") / "micro", seed=0, corpus=CORPUS, size="micro")


@pytest.fixture(scope="module")
def hub_dir(tiny_dir):
    """The tiny policy's weights and tokenizer in a hub checkpoint's layout: preprocessor_config.json with the
    Qwen2.5-VL-7B-Instruct values, the template in chat_template.json, no vvkit or video-processor files."""
    out = tiny_dir.parent / "hub-layout"
    out.mkdir()
    for name in HUB_FILES:
        shutil.copy(tiny_dir / name, out / name)
    (out / "preprocessor_config.json").write_text(json.dumps(HUB_PREPROCESSOR, indent=2))
    (out / "chat_template.json").write_text(json.dumps({"chat_template": STOCK_TEMPLATE}, indent=2))
    return out


@pytest.fixture(scope="module")
def stock(hub_dir):
    """The reference processor, built from transformers' classes and the hub files only (no vvkit code)."""
    values = {k: HUB_PREPROCESSOR[k] for k in ("min_pixels", "max_pixels", "patch_size", "temporal_patch_size",
                                               "merge_size", "image_mean", "image_std")}
    tokenizer = AutoTokenizer.from_pretrained(str(hub_dir), local_files_only=True)
    tokenizer.padding_side = "left"
    return Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(**values), tokenizer=tokenizer,
                               video_processor=Qwen2VLVideoProcessor(**values, do_sample_frames=False,
                                                                     cap_pixels_per_frame=False),
                               chat_template=STOCK_TEMPLATE)


@pytest.fixture(scope="module")
def policy(hub_dir):
    return load_policy(hub_dir)


def _stock_metadata(videos, fps):
    return [VideoMetadata(total_num_frames=len(v), fps=f, height=v.shape[1], width=v.shape[2]) for v, f in
            zip(videos, fps)]


# ----------------------------------------------------------------------------------------------- processor

@pytest.mark.parametrize("shapes,fps", [
    ([(8, 56, 56)], [2.0]),                       # the demo setting
    ([(4, 112, 84)], [1.5]),
    ([(5, 56, 84), (8, 56, 56)], [2.0, 4.0]),     # odd frame count (last frame repeated), two sizes, two fps
    ([(16, 224, 392)], [0.5]),
    ([(6, 60, 50)], [2.0]),                       # not a multiple of 28: both resize
])
def test_processor_tensors_equal_stock(policy, stock, shapes, fps):
    model, processor = policy
    videos = [_video(*s, seed=i) for i, s in enumerate(shapes)]
    messages = [SYSTEM, _question(len(videos))]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert text == stock.apply_chat_template(messages, add_generation_prompt=True)
    ours = processor(text=[text], videos=videos, video_metadata=video_metadata(videos, fps), return_tensors="pt")
    ref = stock(text=[text], videos=videos, video_metadata=_stock_metadata(videos, fps), return_tensors="pt")
    assert set(ours) == set(ref)
    for key in ("input_ids", "attention_mask", "mm_token_type_ids", "pixel_values_videos", "video_grid_thw"):
        assert torch.equal(ours[key], ref[key]), key
    assert torch.equal(ours["second_per_grid_ts"], ref["second_per_grid_ts"])
    assert ours["second_per_grid_ts"].tolist() == pytest.approx([2 / f for f in fps])

    pad = processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    merged = (ref["video_grid_thw"].prod(-1) // 4).sum()  # t*h*w patches over a 2x2 spatial merge
    assert int((ours["input_ids"] == pad).sum()) == int(merged)

    rope = model.model.get_rope_index
    args = ("input_ids", "mm_token_type_ids")
    kw = ("video_grid_thw", "second_per_grid_ts", "attention_mask")
    pos, delta = rope(*(ours[k] for k in args), **{k: ours[k] for k in kw})
    ref_pos, ref_delta = rope(*(ref[k] for k in args), **{k: ref[k] for k in kw})
    assert torch.equal(pos, ref_pos) and torch.equal(delta, ref_delta)
    # the time axis advances tokens_per_second * second_per_grid_ts per temporal patch of the first video
    first = (ours["input_ids"][0] == pad).nonzero()[:, 0]
    t_ids = pos[0, 0, first].unique()
    step = model.config.vision_config.tokens_per_second * 2 / fps[0]
    assert t_ids[1] - t_ids[0] == int(step)


def test_demo_setting_identical_end_to_end(policy, stock, tiny_dir):
    """The demo's 8-frame 56x56 clip at 2 fps: the tiny policy folder and the hub-layout folder give the stock
    processor's exact tensors and the same logits."""
    model, processor = policy
    tiny_model, tiny_processor = load_policy(tiny_dir)
    video = _video(8, 56, 56, seed=7)
    messages = [SYSTEM, _question()]
    text = stock.apply_chat_template(messages, add_generation_prompt=True)
    ref = stock(text=[text], videos=[video], video_metadata=_stock_metadata([video], [2.0]), return_tensors="pt")
    for proc in (processor, tiny_processor):
        assert type(proc.video_processor).__mro__[1] is Qwen2VLVideoProcessor  # the stock class, with two checks
        enc = proc(text=[text], videos=[video], video_metadata=video_metadata([video], 2.0), return_tensors="pt")
        assert all(torch.equal(enc[k], ref[k]) for k in ref)
    assert ref["video_grid_thw"].tolist() == [[4, 4, 4]] and tuple(ref["pixel_values_videos"].shape) == (64, 1176)
    with torch.no_grad():
        assert torch.equal(model(**ref).logits, tiny_model(**ref).logits)


def test_stock_processor_alone_would_assume_24_fps(policy, stock):
    """Why vvkit's video processor requires metadata: the stock one falls back to 24 fps without a word."""
    _, processor = policy
    video = _video(4, 56, 56)
    text = stock.apply_chat_template([SYSTEM, _question()], add_generation_prompt=True)
    assert stock(text=[text], videos=[video], return_tensors="pt")["second_per_grid_ts"].tolist() == \
        pytest.approx([2 / 24])
    with pytest.raises(ValueError, match="video_metadata"):
        processor(text=[text], videos=[video], return_tensors="pt")
    with pytest.raises(ValueError, match="does not sample frames"):
        processor(text=[text], videos=[video], video_metadata=video_metadata([video], 2.0), fps=1.0,
                  return_tensors="pt")


def test_autoprocessor_reads_hub_layout_and_tiny_policy_alike(hub_dir, tiny_dir, tmp_path):
    hub, tiny = get_processor(hub_dir), get_processor(tiny_dir)
    for proc in (hub, tiny):
        assert isinstance(proc, Qwen2_5_VLProcessor)
        assert proc.chat_template == CHAT_TEMPLATE and proc.tokenizer.padding_side == "left"
        assert proc.video_processor.do_sample_frames is False
        assert (proc.video_processor.size.shortest_edge, proc.video_processor.size.longest_edge) == (3136, 12845056)
    assert hub.video_processor.to_dict() == tiny.video_processor.to_dict()
    hub.save_pretrained(tmp_path / "saved")  # a trainer checkpoint's processor files load with the stock loader
    saved = json.loads((tmp_path / "saved" / "processor_config.json").read_text())
    assert saved["video_processor"]["video_processor_type"] == "Qwen2VLVideoProcessor"
    assert get_processor(tmp_path / "saved").video_processor.to_dict() == hub.video_processor.to_dict()
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="preprocessor_config.json"):
        get_processor(tmp_path / "empty")


# ----------------------------------------------------------------------------------------------- chat template

CONVERSATIONS = [
    [SYSTEM, _question()],
    [{"role": "system", "content": [{"type": "text", "text": "Be brief."}]}, _question(2, "Compare them."),
     {"role": "assistant", "content": [{"type": "text", "text": "<answer>A</answer>"}]}, _question(1, "And now?")],
    [{"role": "system", "content": "Answer with a letter."}, {"role": "user", "content": "hi"},
     {"role": "assistant", "content": "B"}],
    [SYSTEM, {"role": "user", "content": [{"type": "text", "text": "First:"}, {"type": "video", "video": "a.mp4"},
                                          {"type": "text", "text": "then:"}, {"type": "image"}]}],
]


@pytest.mark.parametrize("conversation", CONVERSATIONS)
@pytest.mark.parametrize("generation_prompt", [True, False])
def test_chat_template_equals_stock_on_plain_rows(stock, conversation, generation_prompt):
    ours = CHAT_TEMPLATE
    kw = dict(tokenize=False, add_generation_prompt=generation_prompt)
    want = stock.tokenizer.apply_chat_template(conversation, chat_template=STOCK_TEMPLATE, **kw)
    assert stock.tokenizer.apply_chat_template(conversation, chat_template=ours, **kw) == want
    no_system = conversation[1:]  # the one other difference: the stock template adds a default system prompt
    want = stock.tokenizer.apply_chat_template(no_system, chat_template=STOCK_TEMPLATE, **kw)
    assert DEFAULT_SYSTEM + stock.tokenizer.apply_chat_template(no_system, chat_template=ours, **kw) == want


def test_stock_template_miscounts_arrow_rows(stock):
    """Why vvkit keeps its own template: after datasets/Arrow a text part carries 'video': None, and the stock
    template's `'video' in content` test turns every text part into another <|video_pad|>."""
    video = {"type": "video", "video": "clip.mp4"}  # a path in the part, as Video-R1 / TRL rows carry it
    system = {"role": "system", "content": [{"type": "text", "text": "You are a helpful assistant."}]}
    plain = [[system, {"role": "user", "content": [video, {"type": "text", "text": "Q1?"}]}],
             [system, {"role": "user", "content": [{"type": "text", "text": "First:"}, video,
                                                   {"type": "text", "text": "then:"}, video]}]]
    rows = datasets.Dataset.from_list([{"prompt": c} for c in plain])
    assert rows[0]["prompt"][1]["content"][1] == {"type": "text", "video": None, "text": "Q1?"}  # merged keys
    for row, n_videos in zip(rows, (1, 2)):
        kw = dict(tokenize=False, add_generation_prompt=True)
        ours = stock.tokenizer.apply_chat_template(row["prompt"], chat_template=CHAT_TEMPLATE, **kw)
        theirs = stock.tokenizer.apply_chat_template(row["prompt"], chat_template=STOCK_TEMPLATE, **kw)
        assert ours.count("<|video_pad|>") == n_videos
        assert theirs.count("<|video_pad|>") > n_videos


# ----------------------------------------------------------------------------------------------- frame policy

def test_oracle_is_the_pinned_qwen_vl_utils():
    assert (qvu.FRAME_FACTOR, qvu.FPS_MIN_FRAMES, qvu.FPS_MAX_FRAMES, qvu.IMAGE_FACTOR) == (2, 4, 768, 28)
    assert (qvu.VIDEO_MIN_PIXELS, qvu.VIDEO_MAX_PIXELS) == (128 * 28 * 28, 768 * 28 * 28)
    p = FramePolicy()
    assert (p.fps, p.min_frames, p.max_frames, p.min_pixels, p.max_pixels, p.total_pixels) == (
        qvu.FPS, qvu.FPS_MIN_FRAMES, qvu.FPS_MAX_FRAMES, qvu.VIDEO_MIN_PIXELS, qvu.VIDEO_MAX_PIXELS,
        qvu.VIDEO_TOTAL_PIXELS)


def _ref_nframes(ele, total, fps):
    try:
        return qvu.smart_nframes(ele, total_frames=total, video_fps=fps)
    except ValueError:
        return "error"


def _our_nframes(policy, total, fps):
    try:
        return smart_nframes(policy, None, fps, total)
    except ValueError:
        return "error"


NFRAMES_TABLE = [(seconds, video_fps) for seconds in (0.1, 0.5, 1.0, 1.9, 2.0, 3.3, 7.0, 10.0, 61.7, 600.0)
                 for video_fps in (1.0, 8.0, 24.0, 25.0, 29.97, 30.0, 60.0)]
SAMPLING = [dict(fps=2.0), dict(fps=1.0), dict(fps=0.5, min_frames=8, max_frames=32), dict(fps=3.0, min_frames=5,
            max_frames=63), dict(fps=2.0, min_frames=16, max_frames=16), dict(nframes=8), dict(nframes=16),
            dict(nframes=7), dict(nframes=2), dict(nframes=768)]


@pytest.mark.parametrize("sampling", SAMPLING, ids=str)
def test_frame_count_equals_smart_nframes(sampling):
    policy = FramePolicy(**sampling)
    rows = []
    for seconds, video_fps in NFRAMES_TABLE:
        total = max(1, round(seconds * video_fps))
        rows.append((total, video_fps, _our_nframes(policy, total, video_fps), _ref_nframes(sampling, total,
                                                                                          video_fps)))
    assert [r[2] for r in rows] == [r[3] for r in rows], [r for r in rows if r[2] != r[3]]
    assert any(r[3] != "error" for r in rows)


RESIZE_SIZES = [(28, 28), (50, 60), (56, 56), (90, 160), (240, 320), (360, 640), (480, 854), (720, 1280),
                (1080, 1920), (1920, 1080), (2160, 3840), (64, 3000), (100, 101), (13, 27)]
PIXEL_BOUNDS = [(3136, 3136), (3136, 12845056), (128 * 784, 768 * 784), (128 * 784, 196 * 784), (4 * 784, 16 * 784),
                (256 * 784, 1280 * 784)]


@pytest.mark.parametrize("bounds", PIXEL_BOUNDS, ids=str)
def test_resize_equals_smart_resize(bounds):
    lo, hi = bounds
    for h, w in RESIZE_SIZES:
        want = qvu.smart_resize(h, w, factor=28, min_pixels=lo, max_pixels=hi)
        if min(want) == 0:  # the reference can floor a side to 0 on elongated frames; vvkit keeps one factor
            assert smart_resize(h, w, 28, lo, hi) == tuple(max(28, v) for v in want)
            continue
        assert smart_resize(h, w, 28, lo, hi) == want, (h, w)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Small mp4s (h264, textured) with the source size, fps and length of each row."""
    root = tmp_path_factory.mktemp("clips")
    out = {}
    for h, w, fps, n in [(112, 168, 24.0, 48), (120, 160, 30.0, 95), (56, 56, 10.0, 23), (784, 1008, 8.0, 16)]:
        frames = np.random.default_rng(n).integers(0, 256, (n, h // 8, w // 8, 3), dtype=np.uint8)
        frames = frames.repeat(8, 1).repeat(8, 2)
        path = root / f"{h}x{w}_{fps:g}fps_{n}.mp4"
        write_video(frames, path, fps)
        out[(h, w, fps, n)] = path
    return out


FETCH_ROWS = [  # (sampling, min_pixels, max_pixels, total_pixels)
    (dict(fps=2.0), 3136, 12845056, int(128000 * 28 * 28 * 0.9)),
    (dict(nframes=8), 3136, 3136, int(128000 * 28 * 28 * 0.9)),            # the demo preset
    (dict(nframes=16), 128 * 784, 196 * 784, int(128000 * 28 * 28 * 0.9)),  # the paper preset
    (dict(fps=1.0, min_frames=4, max_frames=8), 784, 602112, 20000),        # total budget sets the cap
    (dict(nframes=6), 3136, 602112, 784),                                   # cap floor: int(min_pixels * 1.05)
    (dict(nframes=4), 784, 2000000, 4 * 10 ** 7),                           # max_pixels above 768*28*28
]


@pytest.mark.parametrize("row", FETCH_ROWS, ids=lambda r: str(r[0]) + f"-{r[2]}-{r[3]}")
def test_read_video_equals_fetch_video(clips, row):
    """End to end on real files: frame count, frame size (per-frame cap + resize) and, where no resize happens,
    the decoded pixels themselves (same decord frames, so the same frame positions)."""
    sampling, lo, hi, total = row
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        policy = FramePolicy(**sampling, min_pixels=lo, max_pixels=hi, total_pixels=total, backend="decord")
    assert bool(caught) == (hi > qvu.VIDEO_MAX_PIXELS)  # said once, where the reference would only log it
    for (h, w, fps, n), path in clips.items():
        try:
            ref = qvu.fetch_video({"video": str(path), "min_pixels": lo, "max_pixels": hi, "total_pixels": total,
                                   **sampling})
        except ValueError:  # more frames asked for than the clip holds
            with pytest.raises(VideoError, match="frames"):
                read_video(str(path), policy)
            continue
        ours = read_video(str(path), policy)
        assert ours.frames.shape == (ref.shape[0], ref.shape[2], ref.shape[3], 3), (h, w, fps, n)
        assert frame_size(policy, h, w, ours.frames.shape[0]) == tuple(ref.shape[2:])
        if tuple(ref.shape[2:]) == (h, w):
            assert np.array_equal(ours.frames, ref.permute(0, 2, 3, 1).numpy().astype(np.uint8))
