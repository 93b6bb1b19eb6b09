"""Qwen2.5-VL processor without torchvision: a numpy video processor with the stock output contract, a chat template
that survives Arrow-merged rows, and `get_processor`, which builds `Qwen2_5_VLProcessor` in code.

Follows transformers' `Qwen2VLVideoProcessor` / `Qwen2VLImageProcessorPil` (same resize rule, CLIP normalisation and
temporal-patch x patch x merge layout) and qwen-vl-utils' frame contract. vvkit differs in two places: frames arrive
already sampled by `vvkit.video.read_video` (no frame sampling here), and the sampled fps is required per video, so
`second_per_grid_ts` is never the stock fallback of 2/24 s.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image
from transformers import BatchFeature
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from transformers.processing_utils import VideosKwargs
from transformers.video_processing_utils import VideoProcessorMixin
from transformers.video_utils import VideoMetadata

# One resize rule for the whole pipeline (read_video sizes frames with it). It equals transformers' stock smart_resize
# except for frames with a side of at most 14 px, which it grows to 28 instead of rounding to 0 first.
from vvkit.video import smart_resize

VIDEO_BACKENDS = ("vvkit", "stock")

# ChatML as Qwen2.5-VL writes it, but every content part is dispatched on content['type'] alone: rows that went
# through datasets/Arrow carry merged keys ({'type': 'text', 'video': None, ...}), and the stock template's
# `'video' in content` test then emits a spurious <|video_pad|>. No default system prompt (VersaVid-R1 puts none on
# video samples; the stock template adds "You are a helpful assistant.").
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


class QwenVideoProcessorKwargs(VideosKwargs, total=False):
    """Init keys of the Qwen2-VL video processor (kept in step with the stock `Qwen2VLVideoProcessorInitKwargs`)."""

    min_pixels: int
    max_pixels: int
    patch_size: int
    temporal_patch_size: int
    merge_size: int


class QwenVideoProcessor(VideoProcessorMixin):
    """Numpy/PIL twin of transformers' `Qwen2VLVideoProcessor` (which needs torchvision): (T, H, W, 3) uint8 ->
    (patches, grid)."""

    model_input_names = ["pixel_values_videos", "video_grid_thw"]
    valid_kwargs = QwenVideoProcessorKwargs

    def __init__(self, min_pixels: int = 56 * 56, max_pixels: int = 28 * 28 * 1280, patch_size: int = 14,
                 temporal_patch_size: int = 2, merge_size: int = 2, image_mean: Sequence[float] = OPENAI_CLIP_MEAN,
                 image_std: Sequence[float] = OPENAI_CLIP_STD, rescale_factor: float = 1 / 255):
        super().__init__()
        self.min_pixels, self.max_pixels = int(min_pixels), int(max_pixels)
        self.patch_size, self.temporal_patch_size, self.merge_size = patch_size, temporal_patch_size, merge_size
        self.image_mean, self.image_std = list(image_mean), list(image_std)
        self.rescale_factor = float(rescale_factor)
        self._lut = self._normalisation_table()

    def to_dict(self) -> dict[str, Any]:
        """Saved in the stock format (what `processor.save_pretrained`, e.g. a trainer checkpoint, writes)."""
        return stock_video_config({k: getattr(self, k) for k in PROCESSOR_KEYS})

    def _normalisation_table(self) -> np.ndarray:
        """(3, 256) float32 table of every uint8 value after rescale + CLIP normalisation, computed with the exact
        dtype steps of transformers' numpy path (float64 rescale, cast to float32, float32 normalise)."""
        values = (np.arange(256, dtype=np.float64) * self.rescale_factor).astype(np.float32)  # (256,)
        mean = np.asarray(self.image_mean, dtype=np.float32)[:, None]
        std = np.asarray(self.image_std, dtype=np.float32)[:, None]
        return (values[None, :] - mean) / std  # (3, 256)

    def target_size(self, height: int, width: int) -> tuple[int, int]:
        """The stock rule: smart_resize to multiples of patch*merge within [min_pixels, max_pixels]; a frame read by
        `vvkit.video.read_video` is already a fixed point of it, so it is not resampled a second time."""
        factor = self.patch_size * self.merge_size
        return smart_resize(height, width, factor=factor, min_pixels=self.min_pixels, max_pixels=self.max_pixels)

    def get_num_of_video_patches(self, num_frames: int, height: int, width: int,
                                 videos_kwargs: dict | None = None) -> int:
        """Patches (before merging) for a video of this size, as the stock processor reports them."""
        h, w = self.target_size(height, width)
        grid_t = -(-num_frames // self.temporal_patch_size)
        return grid_t * (h // self.patch_size) * (w // self.patch_size)

    def _patchify(self, frames: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """(T, H, W, 3) uint8 -> (t*h*w, 3*tp*p*p) float32 in the stock (t, h/m, w/m, m, m, C, tp, p, p) order."""
        t, height, width, _ = frames.shape
        h, w = self.target_size(height, width)
        if (h, w) != (height, width):  # PIL bicubic on uint8, as the image processor's numpy/PIL backend does
            frames = np.stack([np.asarray(Image.fromarray(f).resize((w, h), Image.BICUBIC)) for f in frames])
        tp, p, m = self.temporal_patch_size, self.patch_size, self.merge_size
        if pad := -t % tp:  # odd frame count: repeat the last frame, as the stock processor does
            frames = np.concatenate([frames, np.repeat(frames[-1:], pad, axis=0)])
            t += pad
        x = self._lut[np.arange(3)[:, None, None, None], frames.transpose(3, 0, 1, 2)]  # (C, T, H, W) float32
        x = x.transpose(1, 0, 2, 3)  # (T, C, H, W)
        gt, gh, gw = t // tp, h // p, w // p
        x = x.reshape(gt, tp, 3, gh // m, m, p, gw // m, m, p)
        x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)  # (gt, gh/m, gw/m, m, m, C, tp, p, p)
        return x.reshape(gt * gh * gw, 3 * tp * p * p), [gt, gh, gw]

    def preprocess(self, videos: Any, video_metadata: Any = None, return_metadata: bool = False,
                   return_tensors: Any = None, do_sample_frames: bool | None = None, fps: float | None = None,
                   **kwargs: Any) -> BatchFeature:
        """Encode already-sampled videos; `video_metadata` (one dict per video, see `video_metadata()`) is required."""
        if kwargs:
            raise TypeError(f"QwenVideoProcessor got unsupported keyword(s) {sorted(kwargs)}: frame size and count are "
                            "set by FramePolicy in vvkit.video.read_video, not per processor call")
        if do_sample_frames or fps is not None:
            raise ValueError("QwenVideoProcessor does not sample frames (fps=/do_sample_frames= are the stock "
                             "resampling options): frames come from vvkit.video.read_video; pass their sampled fps "
                             "as video_metadata=vvkit.processing.video_metadata(videos, fps)")
        videos = _as_video_list(videos)
        metadata = _as_metadata_list(video_metadata, len(videos))
        patches, grids = [], []
        for video in videos:
            flat, grid = self._patchify(video)
            patches.append(flat)
            grids.append(grid)
        data = {"pixel_values_videos": np.concatenate(patches), "video_grid_thw": np.asarray(grids, dtype=np.int64)}
        out = BatchFeature(data, tensor_type=return_tensors)
        if return_metadata:
            out["video_metadata"] = metadata
        return out


def _as_video_list(videos: Any) -> list[np.ndarray]:
    """A 4-D array or a list of them, as (T, H, W, 3) uint8 numpy arrays; anything else is an error naming the input."""
    if hasattr(videos, "ndim") and videos.ndim == 4:
        videos = [videos]
    if isinstance(videos, (list, tuple)) and videos and all(isinstance(v, (list, tuple)) for v in videos):
        videos = [v for per_sample in videos for v in per_sample]  # apply_chat_template batches them per sample
    if not isinstance(videos, (list, tuple)) or not videos:
        raise TypeError(f"videos must be a non-empty list of (T, H, W, 3) uint8 arrays, got {type(videos).__name__}")
    out = []
    for i, video in enumerate(videos):
        if hasattr(video, "detach"):  # torch tensor
            video = video.detach().cpu().numpy()
        if not isinstance(video, np.ndarray) or video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
            desc = f"{type(video).__name__} {getattr(video, 'shape', '')} {getattr(video, 'dtype', '')}".strip()
            raise TypeError(f"video {i}: expected a (T, H, W, 3) uint8 array as returned by vvkit.video.read_video "
                            f"(Clip.frames), got {desc}")
        out.append(video)
    return out


def _as_metadata_list(video_metadata: Any, n: int) -> list[VideoMetadata]:
    """One VideoMetadata per video with a real fps, or an error: the stock path would silently assume 24 fps."""
    if video_metadata is None:
        raise ValueError("no video_metadata: pass video_metadata=vvkit.processing.video_metadata(videos, fps) with "
                         "each video's sampled fps (Clip.sampled_fps); it sets second_per_grid_ts for M-RoPE")
    if isinstance(video_metadata, (dict, VideoMetadata)):
        video_metadata = [video_metadata]
    if len(video_metadata) != n:
        raise ValueError(f"got {n} videos but {len(video_metadata)} video_metadata entries; pass one per video")
    out = []
    for i, meta in enumerate(video_metadata):
        meta = meta if isinstance(meta, VideoMetadata) else VideoMetadata(**meta)
        if not meta.fps or meta.fps <= 0:
            raise ValueError(f"video_metadata[{i}] has fps={meta.fps}; set it to the video's sampled fps")
        out.append(meta)
    return out


def export_video_processor_mixin() -> None:
    """Make `transformers.VideoProcessorMixin` resolvable without torchvision.

    `ProcessorMixin.__init__` type-checks `video_processor` against `transformers.VideoProcessorMixin`; without
    torchvision that name is not exported and the lookup falls through to a registry that is absent
    (AttributeError '_extra_content'). The class itself is backend-free, so exporting it is all that is missing.
    """
    import transformers

    try:
        existing = transformers.VideoProcessorMixin
    except AttributeError:
        transformers.VideoProcessorMixin = VideoProcessorMixin
        return
    if existing is not VideoProcessorMixin:
        raise RuntimeError("transformers.VideoProcessorMixin is not transformers.video_processing_utils."
                           "VideoProcessorMixin; vvkit's video processor would fail the processor type check")


PROCESSOR_KEYS = ("min_pixels", "max_pixels", "patch_size", "temporal_patch_size", "merge_size", "image_mean",
                  "image_std", "rescale_factor")


def _processor_values(d: dict) -> dict:
    """The PROCESSOR_KEYS present in one stock config dict ('size' spells min/max pixels in newer files)."""
    size = d.get("size") or {}
    out = {k: d[k] for k in PROCESSOR_KEYS if d.get(k) is not None}
    if "min_pixels" not in out and size.get("shortest_edge") is not None:
        out["min_pixels"] = size["shortest_edge"]
    if "max_pixels" not in out and size.get("longest_edge") is not None:
        out["max_pixels"] = size["longest_edge"]
    return out


def read_processor_config(path: str | Path) -> dict:
    """Preprocessing values of a Qwen2.5-VL folder as QwenVideoProcessor init keys: from preprocessor_config.json
    (hub checkpoints, vvkit's tiny policy) and/or processor_config.json (what `processor.save_pretrained` writes, e.g.
    a trainer checkpoint); video-specific values override image ones."""
    path = Path(path)
    layers = []
    if (f := path / "preprocessor_config.json").is_file():
        layers.append(json.loads(f.read_text()))
    nested_file = path / "processor_config.json"
    nested = json.loads(nested_file.read_text()) if nested_file.is_file() else {}
    layers.append(nested.get("image_processor") or {})
    if (f := path / "video_preprocessor_config.json").is_file():
        layers.append(json.loads(f.read_text()))
    layers.append(nested.get("video_processor") or {})
    cfg = {"patch_size": 14, "temporal_patch_size": 2, "merge_size": 2, "image_mean": list(OPENAI_CLIP_MEAN),
           "image_std": list(OPENAI_CLIP_STD), "rescale_factor": 1 / 255}
    for layer in layers:
        cfg.update(_processor_values(layer))
    missing = [k for k in ("min_pixels", "max_pixels") if k not in cfg]
    if missing:
        raise FileNotFoundError(f"{path}: no {missing} in preprocessor_config.json / processor_config.json; a "
                                "Qwen2.5-VL folder needs them (or size.shortest_edge/longest_edge) for its processor")
    return cfg


def stock_video_config(cfg: dict) -> dict:
    """`cfg` (read_processor_config keys) in the stock Qwen2VLVideoProcessor format, without frame resampling, so a
    saved folder also loads with AutoProcessor where torchvision exists."""
    return {**{k: cfg[k] for k in PROCESSOR_KEYS if k not in ("min_pixels", "max_pixels")},
            "size": {"shortest_edge": cfg["min_pixels"], "longest_edge": cfg["max_pixels"]}, "do_resize": True,
            "do_rescale": True, "do_normalize": True, "do_convert_rgb": True, "resample": 3, "do_sample_frames": False,
            "cap_pixels_per_frame": False, "video_processor_type": "Qwen2VLVideoProcessor"}


def processor_config_files(cfg: dict) -> dict[str, dict]:
    """The stock-format preprocessor files for `cfg`, as a hub Qwen2.5-VL checkpoint ships them."""
    video = stock_video_config(cfg)
    image = {**{k: cfg[k] for k in PROCESSOR_KEYS}, "size": video["size"], "do_resize": True, "do_rescale": True,
             "do_normalize": True, "do_convert_rgb": True, "resample": 3,
             "image_processor_type": "Qwen2VLImageProcessor"}
    return {"preprocessor_config.json": {**image, "processor_class": "Qwen2_5_VLProcessor"},
            "video_preprocessor_config.json": {**video, "processor_class": "Qwen2_5_VLProcessor"}}


def _stock_video_processor(cfg: dict) -> Any:
    """transformers' own `Qwen2VLVideoProcessor` (needs torchvision) with the same values and no frame resampling."""
    try:
        from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor
    except ImportError as err:
        raise ImportError(f"video_backend='stock' needs a working torchvision ({err}); use video_backend='vvkit', "
                          "which gives the same tensors without it") from None
    return Qwen2VLVideoProcessor(**cfg, do_sample_frames=False, cap_pixels_per_frame=False)


def build_processor(tokenizer: Any, cfg: dict, video_backend: str = "vvkit") -> Any:
    """`Qwen2_5_VLProcessor` from a tokenizer and read_processor_config values, with vvkit's chat template."""
    from transformers import Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    if video_backend not in VIDEO_BACKENDS:
        raise ValueError(f"video_backend={video_backend!r}; choose one of {VIDEO_BACKENDS}")
    video_processor = QwenVideoProcessor(**cfg) if video_backend == "vvkit" else _stock_video_processor(cfg)
    image_processor = Qwen2VLImageProcessorPil(**{k: cfg[k] for k in (
        "min_pixels", "max_pixels", "patch_size", "temporal_patch_size", "merge_size", "image_mean", "image_std")})
    export_video_processor_mixin()
    tokenizer.padding_side = "left"  # batched generation appends to the right end of every row
    tokenizer.chat_template = CHAT_TEMPLATE
    return Qwen2_5_VLProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
                               chat_template=CHAT_TEMPLATE)


def get_processor(path: str | Path, video_backend: str = "vvkit") -> Any:
    """Build the processor of a local Qwen2.5-VL folder in code (AutoProcessor needs torchvision): its tokenizer,
    its preprocessing values, vvkit's video processor ("vvkit") or transformers' ("stock"), vvkit's chat template."""
    from transformers import AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: not a folder; get_processor needs a local Qwen2.5-VL checkpoint folder")
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    return build_processor(tokenizer, read_processor_config(path), video_backend=video_backend)
