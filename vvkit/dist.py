"""Process state for a job of one or many processes (torchrun, accelerate launch, DeepSpeed), and building a policy
once per job: the main process writes, the others wait and read the same folder (accelerate's `main_process_first`)."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from vvkit.budget import uses_deepspeed
from vvkit.model import build_tiny_policy
from vvkit.rundir import RunDir


def process_state(cfg: Any) -> Any:
    """accelerate's PartialState as the Trainer will see it. On CPU a bare `PartialState()` under torchrun sets up
    one process per rank (each its own main), so the config's own device setup (`use_cpu`, the gloo backend,
    `ddp_timeout`) must run first; `cfg.world_size` triggers it."""
    from accelerate import PartialState

    if cfg.world_size > 1 and uses_deepspeed(cfg):
        import deepspeed
        import torch.distributed as dist

        # DeepSpeed's own communicator must know the process group before ZeRO-3 partitions a model at load time
        # (accelerate sets it up for GPUs; with gloo on CPU it would count one process and refuse the batch sizes)
        deepspeed.init_distributed(dist_backend=dist.get_backend() if dist.is_initialized() else None)
    return PartialState()


@contextlib.contextmanager
def whole_model_init() -> Any:
    """Build a model whole, outside DeepSpeed ZeRO-3's partitioned init: transformers enters `zero.Init` for every
    model it creates while a ZeRO-3 config is live, which a build on one process (the tiny policy, written by the
    main process while the others wait) must not do."""
    from transformers.integrations import deepspeed as hf_ds

    ref = hf_ds._hf_deepspeed_config_weak_ref
    live = ref() if ref is not None else None
    hf_ds.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        if live is not None:
            hf_ds.set_hf_deepspeed_config(live)


def resolve_policy(cfg: Any) -> Path:
    """The starting policy folder: `cfg.policy`, or the tiny offline policy built once at <run_dir>/policy/tiny (on
    the main process; the other processes wait for it and then read the same folder)."""
    if cfg.policy:
        return Path(cfg.policy)
    with process_state(cfg).main_process_first(), whole_model_init():
        return build_tiny_policy(RunDir(cfg.run_dir).tiny_policy, seed=cfg.seed)
