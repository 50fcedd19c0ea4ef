"""benchmarks/gpu/suite.sh: its CPU dry run runs the whole suite (every framework and variant)
on the tiny 224 px task and prints the report, the GPU suite asks ``zoo bench`` for the issue's
matrix (ResNet-50 and EfficientNet-Lite0, 224 px, batch 256, bf16 and fp32, torch:compile and
tf:xla) with names the registry knows, a GPU run without a GPU stops with advice before any cell,
and the torch adapter's convolutions run channels-last (what the suite's README says). The parts
that need a GPU are skipped, with the reason, on machines without one."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import fake_nvidia_smi as fake

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu" / "suite.sh"
SUITE = ("torch", "torch:compile", "tf", "tf:xla", "jax")
#: The suite's frameworks whose plugin is installed here (all of them in CI).
INSTALLED = [f for f in SUITE if importlib.util.find_spec(f"zoo_{f.split(':')[0]}") is not None]


def _run(*args: str, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHON": sys.executable, "NO_COLOR": "1", **(env or {})}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=full,
                          cwd=ROOT)


def _commands(stdout: str) -> dict[str, list[str]]:
    """The ``$ zoo ...`` lines the suite prints, by sub-command."""
    lines = [shlex.split(line[2:]) for line in stdout.splitlines() if line.startswith("$ zoo ")]
    return {words[1]: words[2:] for words in lines}


def _flags(words: list[str]) -> dict[str, str]:
    return {a: b for a, b in zip(words, words[1:]) if a.startswith("-")}


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.skipif(not {"torch", "jax"} <= set(INSTALLED), reason="the dry run needs zoo-torch and zoo-jax")
def test_dry_run_runs_every_framework_and_variant_on_the_tiny_task_and_prints_the_report(tmp_path):
    proc = _run("--frameworks", ",".join(INSTALLED), "--results-dir", str(tmp_path), "--run-id", "dry",
                env={"DRY_RUN": "1"})
    out = proc.stdout + proc.stderr[-3000:]
    assert proc.returncode == 0, out
    records = _records(tmp_path / "dry")
    cells = [r["cell"] for r in records]
    assert [r["status"] for r in records] == ["ok"] * len(records), out
    labels = {c["framework"] + (f":{c['variant']}" if c.get("variant") else "") for c in cells}
    assert labels == set(INSTALLED), (labels, out)
    assert {(c["task"], c["device"], c["batch_size"], c["precision"], c["init"]) for c in cells} == {
        ("synthetic-imagenet-224-tiny", "cpu", 4, "fp32", "scratch")}
    for r in records:
        assert 0.0 <= r["metrics"]["accuracy"]["value"] <= 100.0 and r["metrics"]["train_throughput"]["value"] > 0
    report = proc.stdout.split("$ zoo report", 1)[1]
    assert "synthetic-imagenet-224-tiny" in report and "no GPU was measured" in proc.stdout
    assert re.search(rf"suite: {len(records)} ok of {len(records)} cells", proc.stdout), proc.stdout


def test_the_gpu_suite_asks_zoo_bench_for_the_issue_s_matrix():
    proc = _run("--print", "--results-dir", "/tmp/suite-results", "--run-id", "r1", "--", "--repeats", "3", timeout=60)
    assert proc.returncode == 0, proc.stderr
    commands = _commands(proc.stdout)
    flags = _flags(commands["bench"])
    assert flags["-f"].split(",") == list(SUITE)
    assert flags["-m"].split(",") == ["resnet50", "efficientnet-lite0"]
    assert (flags["-t"], flags["--device"], flags["--batch-size"], flags["--init"]) == (
        "synthetic-imagenet-224", "gpu", "256", "scratch")
    assert flags["--precision"].split(",") == ["bf16", "fp32"]
    assert (flags["--results-dir"], flags["--run-id"], flags["--repeats"]) == ("/tmp/suite-results", "r1", "3")
    assert commands["bench"][-2:] == ["--repeats", "3"]  # extra flags come last: they override
    assert commands["report"] == ["/tmp/suite-results/r1"]
    assert "20 cells" in proc.stdout


def test_the_suite_s_names_are_known_to_the_registry():
    """Every model, the task and every variant of the GPU suite exist, and the models take 224 px."""
    sys.path.insert(0, str(ROOT / "benchmarks" / "gpu"))
    try:
        import suite
    finally:
        sys.path.pop(0)
    from harness.plugins.registry import build_registry
    from zoo.plugin_host import load_plugins

    registry = build_registry(load_plugins())
    task = registry.task(suite.GPU.task).item
    assert task.input_shape == (224, 224, 3) and task.num_classes == 1000
    for name in suite.GPU.models + suite.DRY_RUN.models:
        spec = registry.model(name).item
        assert spec.forward_flops(task.input_shape, task.num_classes) > 0
    for label in INSTALLED:
        framework, _, variant = label.partition(":")
        if variant:
            assert variant in registry.framework(framework).item.variants
    assert registry.task(suite.DRY_RUN.task).item.input_shape == (224, 224, 3)


def test_a_gpu_run_without_a_gpu_stops_before_any_cell_and_says_to_dry_run(tmp_path):
    fake.install(tmp_path / "bin", [])
    proc = _run("--results-dir", str(tmp_path / "results"), "--run-id", "none",
                env={"PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"}, timeout=60)
    assert proc.returncode == 1
    assert "no usable GPU" in proc.stderr and "--dry-run" in proc.stderr
    assert not (tmp_path / "results").exists()


def _conv_outputs(model: str, bf16: bool, device: str) -> tuple[int, list]:
    """How many convs the zoo-torch module of ``model`` has, and the output of each, from a
    forward on NHWC images as the adapter gives them (``module.bf16`` as ``load_pretrained`` sets
    it for precision bf16)."""
    torch = pytest.importorskip("torch")
    import numpy as np

    from zoo.builtin import zoo_models
    from zoo_torch.adapter import builder

    spec = next(m for m in zoo_models() if m.name == model)
    module = builder(spec.family)(spec, (64, 64, 3), 10)
    module.bf16 = bf16
    module = module.to(device).eval()
    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    outputs = []
    for conv in convs:
        conv.register_forward_hook(lambda _m, _i, out: outputs.append(out))
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype(np.float32)).to(device)
    with torch.inference_mode():
        module(x)
    return len(convs), outputs


def _channels_last(outputs: list) -> list[bool]:
    import torch

    return [o.is_contiguous(memory_format=torch.channels_last) and not o.is_contiguous() for o in outputs]


SUITE_MODELS = [(m, p) for m in ("resnet50", "efficientnet-lite0") for p in (False, True)]


@pytest.mark.skipif(importlib.util.find_spec("zoo_torch") is None, reason="needs zoo-torch")
@pytest.mark.parametrize("model,bf16", SUITE_MODELS)
def test_torch_convolutions_run_channels_last_on_the_cpu(model, bf16):
    """The adapter permutes NHWC images to an NCHW *view* (channels-last strides) and never calls
    .contiguous(): every conv's output is channels-last, so the layout carries through the net
    (with .contiguous() after the permute, none would be)."""
    count, outputs = _conv_outputs(model, bf16, "cpu")
    assert len(outputs) == count > 20 and all(_channels_last(outputs))


@pytest.mark.parametrize("model,bf16", SUITE_MODELS)
def test_torch_convolutions_run_channels_last_on_the_gpu(model, bf16):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU visible to torch: cuDNN's channels-last choice is checked only on a GPU")
    count, outputs = _conv_outputs(model, bf16, "cuda")
    assert len(outputs) == count > 20 and all(_channels_last(outputs))


def test_the_suite_runs_a_resnet50_cell_on_the_gpu(tmp_path):
    from harness.measure import gpu_info

    row, why = gpu_info.visible_gpu()
    if row is None:
        pytest.skip(f"no NVIDIA GPU visible ({why}): the suite itself runs only on a GPU machine")
    proc = _run("--frameworks", "torch", "--models", "resnet50", "--precisions", "bf16", "--results-dir",
                str(tmp_path), "--run-id", "gpu", "--", "--epochs", "1", timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (record,) = _records(tmp_path / "gpu")
    assert record["status"] == "ok" and record["cell"]["device"] == "gpu"
