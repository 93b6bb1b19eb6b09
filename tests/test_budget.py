"""vvkit.budget: the memory estimate counts what a GRPO step holds (Qwen2.5-VL-7B at the paper's shapes), its printed
parts add up to its total, and the launch guard refuses what cannot fit with the settings to change; the one-GPU
preset fits. The estimate against a measured step: benchmarks/bench_memory.py."""
import re
from pathlib import Path

import pytest
import yaml

from vvkit.budget import (CUDA_CONTEXT, GIB, check_fits, count_qwen25vl_parameters, estimate_memory, fits,
                          format_memory, lora_parameters, Shapes)
from vvkit.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]
P7B = 8_292_166_656  # Qwen2.5-VL-7B-Instruct's parameters
GPU_80GB = 80 * 10**9
PAPER = {"frames": {"nframes": 16, "max_pixels": 196 * 28 * 28}, "num_generations": 8, "bf16": True,
         "max_completion_length": 2048, "per_device_train_batch_size": 8, "gradient_accumulation_steps": 4,
         "activation_checkpointing": True, "beta": 0.0}


@pytest.fixture(scope="module")
def cfg7b():
    from transformers import Qwen2_5_VLConfig

    return Qwen2_5_VLConfig(
        text_config=dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                         num_attention_heads=28, num_key_value_heads=4,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]}),
        vision_config=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584),
        tie_word_embeddings=False)


def preset(name: str) -> dict:
    """A params file's grpo_training section with its frames, as the estimate reads a TrainConfig."""
    params = yaml.safe_load((ROOT / "params" / name).read_text())
    return {**params["grpo_training"], "frames": params["frames"]}


@pytest.fixture(autouse=True)
def no_launcher(monkeypatch):
    for key in ("ACCELERATE_USE_DEEPSPEED", "ACCELERATE_DEEPSPEED_CONFIG_FILE", "ACCELERATE_DEEPSPEED_ZERO_STAGE"):
        monkeypatch.delenv(key, raising=False)


def test_memory_estimate_counts_qwen25vl_7b_and_scales_with_frames(cfg7b):
    est = estimate_memory(PAPER, cfg7b, world_size=6, zero_stage=3, offload=True)
    assert est.setup["parameters"] == P7B  # a meta-device build counts the same
    assert est.tokens.video_tokens == 8 * 196 and est.tokens.prompts_per_step == 24
    assert est.weights == P7B * 2 // 6
    assert est.optimizer == 0 and est.host > 0
    more = estimate_memory({**PAPER, "frames": {"nframes": 32, "max_pixels": 196 * 28 * 28}}, cfg7b, world_size=6,
                           zero_stage=3, offload=True)
    assert more.tokens.video_tokens == 2 * est.tokens.video_tokens and more.total > est.total
    single = estimate_memory(PAPER, cfg7b, world_size=1, zero_stage=0, offload=False)
    assert single.total > 80 * GIB  # full fine-tuning of 7B does not fit one 80 GB GPU
    assert "total / GPU" in format_memory(est)


def test_weight_dtypes_set_the_budget(cfg7b):
    base = {**PAPER, "max_completion_length": 512, "beta": 0.04}
    one_lora = estimate_memory({**base, "lora": {"r": 8}}, cfg7b, world_size=1, zero_stage=0)
    adapters = lora_parameters({"r": 8}, Shapes.of(cfg7b))
    assert one_lora.weights == P7B * 2 + adapters * 4  # bf16 base as loaded; peft keeps adapters fp32
    assert one_lora.reference == 0  # LoRA's reference is the base with adapters off
    one_full = estimate_memory(base, cfg7b, world_size=1, zero_stage=0)
    assert one_full.weights == P7B * 4  # fp32 masters
    assert one_full.reference == P7B * 2  # bf16 reference
    assert one_full.update.autocast_copies == P7B * 2  # autocast caches a bf16 copy of every fp32 weight
    assert one_full.generation.moment == one_lora.generation.moment
    assert one_full.generation.kv_cache == 2 * one_lora.generation.kv_cache  # generate() runs fp32 weights in fp32
    zero3 = estimate_memory(base, cfg7b, world_size=8, zero_stage=3)
    assert zero3.weights == P7B * 2 // 8


def test_gradients_count_where_the_backward_holds_them(cfg7b):
    one = {**PAPER, "gradient_accumulation_steps": 1, "max_completion_length": 512}
    lora = estimate_memory({**one, "lora": {"r": 8}}, cfg7b, world_size=1, zero_stage=0)
    assert lora.update.moment == "backward start" and lora.update.gradients == 0  # activations >> LoRA gradients
    full = estimate_memory(one, cfg7b, world_size=1, zero_stage=0)
    assert full.update.moment == "vision backward" and full.update.gradients == full.gradients
    assert full.update.text_activations < lora.update.text_activations  # the decoder's are freed by then
    held = estimate_memory(PAPER, cfg7b, world_size=1, zero_stage=0)  # accumulation: held from micro-batch 2 on
    assert held.update.moment == "backward" and held.update.gradients == held.gradients
    assert held.parts()["gradients"] == held.gradients and full.phases()["generation"] < held.phases()["update"]


def test_zero3_on_8_gpus_counts_what_the_old_estimate_left_out(cfg7b):
    est = estimate_memory(PAPER, cfg7b, world_size=8, zero_stage=3, offload=False)
    assert est.generation.gathered_weights == P7B * 2  # each rank gathers the full bf16 weights to generate
    assert est.tokens.generation_batch == 32 and est.generation.moment == "prefill"
    # the prefill runs the decoder's gated MLP over every prompt token of the batch: > 32 x 1698 x 3 x 18944 bf16
    assert est.generation.transients > 32 * 1698 * 3 * 18944 * 2
    assert est.update.vision_activations > 32 * 8 * 6272 * 1280 * 2  # stored inputs of 32 vision blocks, 8 videos
    assert est.update.logits > 0 and est.update.zero3_buffers > 0
    assert est.peak_phase == "generation" and 40 * GIB < est.total < 55 * GIB  # the old estimate printed 27.5 GiB
    assert fits(est, GPU_80GB / GIB)


def test_lora_parameters_match_peft():
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    config = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e4, "mrope_section": [2, 3, 3]}),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=48, num_heads=2, out_hidden_size=64))
    model = Qwen2_5_VLForConditionalGeneration(config)
    assert count_qwen25vl_parameters(config)["total"] == sum(p.numel() for p in model.parameters())
    for targets in (["q_proj", "v_proj"], ["q_proj", "k_proj", "v_proj", "o_proj"], ["gate_proj", "down_proj"]):
        lora = {"r": 4, "target_modules": targets}
        peft_model = get_peft_model(Qwen2_5_VLForConditionalGeneration(config), LoraConfig(**lora))
        trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
        assert lora_parameters(lora, Shapes.of(config)) == trainable, targets


def test_printed_parts_add_up_to_the_printed_total(tmp_path, cfg7b):
    from transformers import AutoConfig

    from vvkit.model import build_tiny_policy

    tiny = AutoConfig.from_pretrained(build_tiny_policy(tmp_path / "tiny", size="micro"))
    small = {"frames": {"nframes": 4, "min_pixels": 3136, "max_pixels": 3136}, "num_generations": 2,
             "per_device_train_batch_size": 4, "max_completion_length": 8}
    for cfg, model_config, device in [(small, tiny, "cuda"), (PAPER, cfg7b, "cuda"),
                                      ({**PAPER, "lora": {"r": 64}}, cfg7b, "cpu")]:
        est = estimate_memory(cfg, model_config, world_size=1, zero_stage=0, device=device)
        assert sum(est.parts().values()) == est.total
        text = format_memory(est)
        rows = re.findall(r"^  (\S.*?)\s{2,}([\d.]+) GiB", text, flags=re.M)
        rows = rows[:[n.startswith("total") for n, _ in rows].index(True) + 1]  # the table, not the phases below
        names, values = [n for n, _ in rows], [float(v) for _, v in rows]
        assert names[-1].startswith("total") and names[:-1] == list(est.parts())
        assert sum(values[:-1]) == pytest.approx(values[-1], abs=0.01 * len(values))
    tiny_est = estimate_memory(small, tiny, world_size=1, device="cuda")
    assert tiny_est.runtime == CUDA_CONTEXT and "cuda context" in format_memory(tiny_est)  # the tiny total's 1 GiB


def test_guard_refuses_the_paper_full_fine_tune_on_one_80gb_gpu(cfg7b):
    paper = preset("paper.yaml")
    assert paper["bf16"] and not paper.get("lora")
    with pytest.raises(ConfigError) as err:
        check_fits(paper, cfg7b, GPU_80GB, world_size=1)  # no launcher: fp32 weights, no DeepSpeed
    message = str(err.value)
    for setting in ("LoRA", "ZeRO-3", "params/accelerate/zero3.yaml", "frames.max_frames", "frames.max_pixels",
                    "max_completion_length"):
        assert setting in message, setting
    assert re.search(r"LoRA.*: [\d.]+ GiB, fits", message) and re.search(r"ZeRO-3.*: [\d.]+ GiB, fits", message)


def test_guard_lets_lora_on_one_gpu_and_zero3_on_eight_through(cfg7b):
    lora = check_fits(preset("paper_1gpu.yaml"), cfg7b, GPU_80GB, world_size=1)
    assert lora.setup["lora"] and lora.setup["weight_bytes"] == 2 and lora.total < 0.9 * GPU_80GB
    zero3 = check_fits(preset("paper.yaml"), cfg7b, GPU_80GB, world_size=8, zero_stage=3, offload=False)
    assert zero3.setup["zero_stage"] == 3 and zero3.total < 0.9 * GPU_80GB


def test_guard_needs_a_device_size_on_the_cpu(cfg7b):
    est = check_fits({**preset("paper.yaml"), "use_cpu": True}, cfg7b, world_size=1)  # no CUDA device: no guard
    assert est.setup["device"] == "cpu" and est.runtime < CUDA_CONTEXT
    with pytest.raises(ConfigError):
        check_fits({**preset("paper.yaml"), "use_cpu": True}, cfg7b, GPU_80GB, world_size=1)


def test_one_gpu_preset_is_the_paper_recipe_with_lora():
    paper = yaml.safe_load((ROOT / "params" / "paper.yaml").read_text())
    one = yaml.safe_load((ROOT / "params" / "paper_1gpu.yaml").read_text())
    assert one["run"].pop("name") == "paper_1gpu" and paper["run"].pop("name") == "paper"
    lora = one["grpo_training"].pop("lora")
    assert lora["r"] == 64 and "q_proj" in lora["target_modules"]
    assert one["grpo_training"].pop("learning_rate") > paper["grpo_training"].pop("learning_rate")
    assert one == paper  # everything else is the paper's: a change to paper.yaml goes in both files
