"""The three descriptions of the environment (requirements.txt, pyproject.toml, environment.yml) agree, and the
installed environment is the pinned one (one environment for CPU and GPU: torch 2.14.1 with its torchvision)."""
import importlib.metadata
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines):
    out = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            name = re.split(r"[=<>!\[ ]", line)[0].lower()
            out[name] = line.replace(" ", "")
    return out


def test_pyproject_and_requirements_pin_the_same_packages():
    req = _pins((ROOT / "requirements.txt").read_text().splitlines())
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = _pins(proj["dependencies"] + proj["optional-dependencies"]["test"])
    assert deps == req
    assert (req["torch"], req["torchvision"]) == ("torch==2.14.1", "torchvision==0.29.1")
    assert req["qwen-vl-utils"] == "qwen-vl-utils==0.0.10"  # the oracle of vvkit.video's frame rules
    assert "torchcodec" not in req  # needs system FFmpeg and CUDA libraries; vvkit decodes with decord / PyAV


def test_installed_environment_is_the_pinned_one():
    req = _pins((ROOT / "requirements.txt").read_text().splitlines())
    for name in ("torch", "torchvision", "qwen-vl-utils", "transformers", "decord", "av"):
        version = importlib.metadata.version(name).split("+")[0]  # 2.14.1+cu130: a CUDA build that runs on CPU
        assert f"{name}=={version}" == req[name], f"installed {name} {version}, requirements.txt pins {req[name]}"
    import torchvision
    from transformers import Qwen2VLVideoProcessor

    assert torchvision.ops.nms is not None and Qwen2VLVideoProcessor() is not None  # fails without torchvision


def test_environment_yml_installs_requirements_with_python_311():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    assert pip[:2] == ["torch==2.14.1", "torchvision==0.29.1"] and "-r requirements.txt" in pip
