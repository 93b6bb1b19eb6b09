"""The Qwen2.5-VL processor, stock parts first: `get_processor` loads a checkpoint folder's own processor with
`AutoProcessor` (transformers' `Qwen2_5_VLProcessor`, `Qwen2VLImageProcessor`, `Qwen2VLVideoProcessor`), so the tiny
policy and a real Qwen2.5-VL checkpoint go through the same code, on CPU and on GPU.

vvkit changes three things on top, each because no library does it (docs/implementation.md lists them with numbers):
- the video processor refuses to resample and requires each video's real sampled fps: frames arrive already sampled
  and sized by `vvkit.video.read_video` (FramePolicy, qwen-vl-utils' rules), and without metadata the stock path
  silently assumes 24 fps, i.e. `second_per_grid_ts` = 2/24 s, which bends the M-RoPE time axis;
- the chat template dispatches on `content['type']` alone, because rows that went through datasets/Arrow carry
  merged keys and the stock Qwen2.5-VL template then emits an extra `<|video_pad|>` per text part;
- the tokenizer pads on the left, for batched generation.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from transformers import Qwen2VLVideoProcessor
from transformers.video_utils import VideoMetadata

__all__ = ["CHAT_TEMPLATE", "SampledVideoProcessor", "get_processor", "processor_config_files", "video_metadata"]

# ChatML as Qwen2.5-VL writes it, but every content part is dispatched on content['type'] alone: rows that went
# through datasets/Arrow carry merged keys ({'type': 'text', 'video': None, ...}), and the stock template's
# `'video' in content` test then emits a spurious <|video_pad|>. No default system prompt: the stock template adds
# "You are a helpful assistant." to a conversation that has no system message; vvkit's prompts carry their own.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}"
    "{{- message['content'] -}}"
    "{%- else -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'video' -%}{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}"
    "{%- elif part['type'] == 'image' -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}"
    "{%- else -%}{{- raise_exception('unknown content type: ' + part['type']|string) -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


def video_metadata(videos: Sequence[np.ndarray], fps: float | Sequence[float]) -> list[dict]:
    """Per-video metadata carrying the REAL sampled fps (Clip.sampled_fps): what `Qwen2_5_VLProcessor` (5.x) reads to
    compute `second_per_grid_ts = temporal_patch_size / fps`; pass it as `processor(..., video_metadata=...)`."""
    fps_list = [float(fps)] * len(videos) if np.isscalar(fps) else [float(f) for f in fps]
    if len(fps_list) != len(videos):
        raise ValueError(f"video_metadata: got {len(videos)} videos but {len(fps_list)} fps values; pass one per video")
    out = []
    for i, (video, f) in enumerate(zip(videos, fps_list)):
        if not f > 0:
            raise ValueError(f"video_metadata: video {i} has fps={f}; pass the positive sampled fps (Clip.sampled_fps)")
        t, h, w = int(video.shape[0]), int(video.shape[1]), int(video.shape[2])
        out.append({"total_num_frames": t, "fps": f, "height": h, "width": w, "duration": t / f})
    return out


def _count_videos(videos: Any) -> int:
    """Number of videos in a processor input: one 4-D array, a list of them, or per-sample lists of them."""
    if hasattr(videos, "ndim"):
        return 1 if videos.ndim == 4 else len(videos)
    if isinstance(videos, (list, tuple)):
        return sum(len(v) if isinstance(v, (list, tuple)) else 1 for v in videos)
    raise TypeError(f"videos must be (T, H, W, 3) uint8 arrays as returned by vvkit.video.read_video (Clip.frames), "
                    f"got {type(videos).__name__}")


def _check_metadata(video_metadata: Any, n: int) -> None:
    """One metadata entry with a positive fps per video, or an error: the stock path would silently assume 24 fps."""
    if video_metadata is None:
        raise ValueError("no video_metadata: pass video_metadata=vvkit.processing.video_metadata(videos, fps) with "
                         "each video's sampled fps (Clip.sampled_fps); it sets second_per_grid_ts for M-RoPE")
    if isinstance(video_metadata, (dict, VideoMetadata)):
        video_metadata = [video_metadata]
    flat = [m for per in video_metadata for m in (per if isinstance(per, (list, tuple)) else [per])]
    if len(flat) != n:
        raise ValueError(f"got {n} videos but {len(flat)} video_metadata entries; pass one per video")
    for i, meta in enumerate(flat):
        fps = meta.get("fps") if isinstance(meta, dict) else meta.fps
        if not fps or fps <= 0:
            raise ValueError(f"video_metadata[{i}] has fps={fps}; set it to the video's sampled fps")


class SampledVideoProcessor(Qwen2VLVideoProcessor):
    """transformers' `Qwen2VLVideoProcessor` for frames that vvkit has already sampled and sized.

    Every pixel operation is the stock class's. Two refusals are added: no frame resampling (`do_sample_frames`,
    `fps=`), and no video without its sampled fps in `video_metadata`. Saved as the stock class, so a checkpoint
    written by a vvkit trainer loads with `AutoProcessor` anywhere.
    """

    def preprocess(self, videos: Any, **kwargs: Any) -> Any:
        """Stock preprocessing after the two checks; `video_metadata` is one dict per video (see `video_metadata`)."""
        if kwargs.get("do_sample_frames") or kwargs.get("fps") is not None:
            raise ValueError("the video processor does not sample frames (fps=/do_sample_frames= are the stock "
                             "resampling options): frames come from vvkit.video.read_video; pass their sampled fps "
                             "as video_metadata=vvkit.processing.video_metadata(videos, fps)")
        _check_metadata(kwargs.get("video_metadata"), _count_videos(videos))
        return super().preprocess(videos, **{**kwargs, "do_sample_frames": False})

    def to_dict(self) -> dict[str, Any]:
        """The stock format (what `processor.save_pretrained`, e.g. a trainer checkpoint, writes)."""
        return {**super().to_dict(), "video_processor_type": "Qwen2VLVideoProcessor"}


def processor_config_files(cfg: dict) -> dict[str, dict]:
    """The preprocessor files of a hub Qwen2.5-VL checkpoint for `cfg` (min_pixels, max_pixels, patch_size,
    temporal_patch_size, merge_size, image_mean, image_std, rescale_factor), plus the video processor's own file
    (frame resampling off, as vvkit samples frames itself)."""
    size = {"shortest_edge": cfg["min_pixels"], "longest_edge": cfg["max_pixels"]}
    common = {k: cfg[k] for k in ("patch_size", "temporal_patch_size", "merge_size", "image_mean", "image_std",
                                  "rescale_factor")}
    common.update(size=size, do_resize=True, do_rescale=True, do_normalize=True, do_convert_rgb=True, resample=3)
    image = {"min_pixels": cfg["min_pixels"], "max_pixels": cfg["max_pixels"], **common,
             "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2_5_VLProcessor"}
    video = {**common, "do_sample_frames": False, "cap_pixels_per_frame": False,
             "video_processor_type": "Qwen2VLVideoProcessor", "processor_class": "Qwen2_5_VLProcessor"}
    return {"preprocessor_config.json": image, "video_preprocessor_config.json": video}


def get_processor(path: str | Path) -> Any:
    """The processor of a local Qwen2.5-VL folder (tiny policy, hub checkpoint or trainer checkpoint), loaded with
    `AutoProcessor`; its video processor becomes a `SampledVideoProcessor` with the same values, and vvkit's chat
    template and left padding are set on it and on its tokenizer."""
    from transformers import AutoProcessor, Qwen2_5_VLProcessor

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: not a folder; get_processor needs a local Qwen2.5-VL checkpoint folder")
    missing = [f for f in ("tokenizer_config.json",) if not (path / f).is_file()]
    if not any((path / f).is_file() for f in ("preprocessor_config.json", "processor_config.json")):
        missing.append("preprocessor_config.json (or processor_config.json)")
    if missing:
        raise FileNotFoundError(f"{path}: no {', '.join(missing)}; a Qwen2.5-VL checkpoint folder ships them (copy "
                                "them from the base model's folder)")
    processor = AutoProcessor.from_pretrained(str(path), local_files_only=True)
    if not isinstance(processor, Qwen2_5_VLProcessor):
        raise ValueError(f"{path}: AutoProcessor built a {type(processor).__name__}, not a Qwen2_5_VLProcessor; "
                         "vvkit loads Qwen2.5-VL checkpoints")
    stock = processor.video_processor.to_dict()
    stock.update(do_sample_frames=False, cap_pixels_per_frame=False)  # frames are sampled and sized by FramePolicy
    processor.video_processor = SampledVideoProcessor(**{k: v for k, v in stock.items()
                                                         if k not in ("video_processor_type", "processor_class")})
    processor.tokenizer.padding_side = "left"  # batched generation appends to the right end of every row
    processor.tokenizer.chat_template = CHAT_TEMPLATE
    processor.chat_template = CHAT_TEMPLATE
    return processor
