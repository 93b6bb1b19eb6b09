"""Benchmark: GRPO rollouts with HF `generate` (vvkit.rollout.generate) against the vLLM engine
(vvkit.vllm_engine), in one run, on the same encoded video prompts.

A mid-size random Qwen2.5-VL (text: hidden 512, 8 layers, gated MLP 2816, GQA 4/2 heads of 128; vision: hidden 320,
depth 8; ~55M parameters, the shape of benchmarks/bench_memory.py, the tiny policy's tokenizer) samples G = 8
completions for each of 2 prompts (16 frames at <= 168x168, 288 video tokens), every completion forced to
`--new-tokens` tokens (HF min_new_tokens; vLLM min_tokens + ignore_eos) so both engines produce the same number of
tokens. fp32 on both (the HF policy's precision on the CPU). One warm-up call per engine, then `--repeats` timed calls;
the median counts. The environment (versions, cores, load average before and after) is recorded with the result: the
machine may be shared, and the ratio is only comparable between runs on one machine.

    .venv-vllm/bin/python benchmarks/bench_vllm.py [--new-tokens 256] [--repeats 2] [--threads 2]

Goal: none on the CPU (at 1.2M parameters vLLM was no faster than HF); the number to read is the ratio at this size,
and the same script on a GPU. Writes benchmarks/results/vllm.json (atomic).
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from mid_world import FRAMES, mid_policy, square_rows
from vvkit.io import atomic_write_json

HERE = Path(__file__).resolve().parent


def timed(fn, repeats: int) -> tuple[list[float], object]:
    fn()  # warm-up: first-call allocations, the engine's graph and cache setup
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return times, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default=str(HERE / "results" / "vllm.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import transformers
    import vllm
    from vllm import SamplingParams

    from vvkit import vllm_engine
    from vvkit.model import count_parameters, load_policy
    from vvkit.rollout import encode_row, generate, never_sampled, special_ids, stop_token_ids
    from vvkit.video import FramePolicy

    load_before = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="bench_vllm_"))
    try:
        policy = mid_policy(root)
        model, processor = load_policy(policy)
        pairs = [encode_row(processor, r, FramePolicy.from_dict(FRAMES)) for r in square_rows(root)]
        clips, encoded = [c for c, _ in pairs], [e for _, e in pairs]
        n, new = args.group, args.new_tokens

        hf_times, _ = timed(lambda: generate(model, processor, encoded, n=n, temperature=1.0,
                                                  max_new_tokens=new, min_new_tokens=new), args.repeats)

        start = time.perf_counter()
        llm = vllm_engine.build_engine(policy, max_model_len=2048, dtype="float32", seed=0)
        engine_start_s = time.perf_counter() - start
        vllm_engine.push_weights(llm, model)
        prompts = [vllm_engine.engine_prompt(e, c, special_ids(processor)[0]) for e, c in zip(encoded, clips)]
        params = SamplingParams(n=n, temperature=1.0, top_k=0, max_tokens=new, min_tokens=new, ignore_eos=True,
                                stop_token_ids=stop_token_ids(processor.tokenizer),
                                logit_bias={i: vllm_engine.BANNED_BIAS for i in never_sampled(processor)})
        vllm_times, vllm_out = timed(lambda: llm.generate(prompts, sampling_params=params, use_tqdm=False),
                                     args.repeats)
        vllm_tokens = sum(len(c.token_ids) for r in vllm_out for c in r.outputs)
        hf_s, vllm_s = statistics.median(hf_times), statistics.median(vllm_times)
        result = {
            "claim": "HF generate vs the vLLM engine for GRPO rollouts of video prompts, same inputs, same token count",
            "model": {"parameters": count_parameters(model)["total"], "size": "mid"},
            "workload": {"prompts": len(encoded), "group": n, "new_tokens": new, "frames": FRAMES,
                         "prompt_tokens": [len(e.input_ids) for e in encoded], "dtype": "float32",
                         "sequences": len(encoded) * n, "vllm_tokens_generated": vllm_tokens},
            "hf_s": hf_times, "vllm_s": vllm_times, "hf_median_s": hf_s, "vllm_median_s": vllm_s,
            "speedup_vllm_over_hf": hf_s / vllm_s,
            "hf_tokens_per_s": len(encoded) * n * new / hf_s, "vllm_tokens_per_s": len(encoded) * n * new / vllm_s,
            "vllm_engine_start_s": engine_start_s,
            "environment": {"torch": torch.__version__, "transformers": transformers.__version__,
                            "vllm": vllm.__version__, "python": platform.python_version(),
                            "machine": platform.machine(), "cpus": os.cpu_count(), "hf_threads": args.threads,
                            "cuda": torch.cuda.is_available(),
                            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
                            "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE"),
                            "load_avg_before": load_before, "load_avg_after": os.getloadavg()},
        }
        atomic_write_json(args.out, result)
        print(f"HF {hf_s:.2f} s, vLLM {vllm_s:.2f} s: vLLM {hf_s / vllm_s:.2f}x "
              f"({result['model']['parameters'] / 1e6:.0f}M params, {len(encoded)}x{n} x {new} tokens) -> {args.out}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
