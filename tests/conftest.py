"""Shared test settings: offline, two threads, headless."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("VVKIT_HEADLESS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

# One thread: on a shared 2-core machine two OpenMP threads spin-wait on each other and run far slower.
torch.set_num_threads(1)
