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


def test_side_environments_share_torch_through_hard_links(tmp_path):
    """`make vllm-env` / `make lmms-env` link .venv's torch instead of unpacking 5.4 GB each (tools/link_torch.py):
    the new environment's metadata (what its pip reads) holds torch and its CUDA wheels, and the files are the same
    inodes. (Importing torch there needs its small dependencies, which the Makefile's pip step adds next; the vLLM and
    lmms-eval suites run in those environments.)"""
    import os
    import subprocess
    import sys
    import sysconfig

    venv = tmp_path / "side"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "link_torch.py"), str(venv)],
                         check=True, capture_output=True, text=True).stdout
    python = venv / "bin" / "python"
    code = "import importlib.metadata as m; print(m.version('torch'), m.version('torchvision'), m.version('triton'))"
    got = subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True).stdout.split()
    assert got == [importlib.metadata.version(n) for n in ("torch", "torchvision", "triton")]
    assert (venv / "bin" / "torchrun").read_text().startswith(f"#!{python.absolute()}\n")
    here = Path(sysconfig.get_paths()["purelib"]) / "torch" / "__init__.py"
    there = next(venv.glob("lib/python*/site-packages/torch/__init__.py"))
    if here.stat().st_dev == there.stat().st_dev:
        assert here.stat().st_ino == there.stat().st_ino and "linked" in out and "copied" not in out
    else:
        assert "different file systems" in out and here.read_bytes() == there.read_bytes()
    there.unlink()                       # removing the side environment's entry leaves .venv's copy
    assert here.exists() and os.path.getsize(here) > 0
