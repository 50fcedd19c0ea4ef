"""The ``zoo`` command as a user runs it: real subprocesses, real plugins."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT, needs_plugin, run_zoo

FRAMEWORK_MODULES = ("torch", "tensorflow", "keras", "jax", "flax")


@pytest.mark.parametrize("argv", [["--help"], ["plugins"], ["models"], ["tasks"], ["bench", "--help"]])
def test_listing_commands_never_import_a_framework(argv):
    code = (
        "import sys\nfrom harness.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        f"loaded = [m for m in {FRAMEWORK_MODULES!r} if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr


@needs_plugin("zoo-torch")
def test_plugins_lists_distribution_and_registrations():
    proc = run_zoo("plugins")
    assert proc.returncode == 0, proc.stderr
    assert "zoo-torch" in proc.stdout and "framework torch" in proc.stdout
    assert "model cnn" in proc.stdout


def test_models_lists_checkpoints():
    proc = run_zoo("models")
    assert proc.returncode == 0, proc.stderr
    assert "cnn-digits0to4" in proc.stdout and "mlp-digits0to4" in proc.stdout


def test_bench_with_no_framework_installed_says_what_to_install(tmp_path):
    proc = run_zoo("bench", "--results-dir", str(tmp_path), env={"ZOO_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert proc.returncode == 2
    assert "no framework plugin is installed" in proc.stderr and "pip install zoo-torch" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.iterdir()), "nothing may be written when nothing can run"


@needs_plugin("zoo-torch")
def test_unknown_framework_suggests_the_closest(tmp_path):
    proc = run_zoo("bench", "-f", "trch", "--results-dir", str(tmp_path))
    assert proc.returncode == 2
    assert "unknown framework 'trch'" in proc.stderr and "did you mean 'torch'" in proc.stderr


@needs_plugin("zoo-torch")
def test_unwritable_results_dir_fails_before_measuring(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = run_zoo("bench", "-f", "torch", "--results-dir", str(blocker / "sub"))
    assert proc.returncode == 2
    assert "cannot write results" in proc.stderr and "--results-dir" in proc.stderr


@needs_plugin("zoo-torch")
def test_bad_batch_size_is_refused():
    proc = run_zoo("bench", "-f", "torch", "--batch-size", "0")
    assert proc.returncode == 2 and "--batch-size must be at least 1" in proc.stderr


@pytest.mark.slow
@needs_plugin("zoo-torch")
def test_bench_end_to_end_writes_records_and_prints_the_table(tmp_path):
    proc = run_zoo("bench", "-f", "pytorch", "-m", "mlp,cnn", "--epochs", "2", "--windows", "3",
                   "--results-dir", str(tmp_path), "--run-id", "e2e")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "accuracy %" in proc.stdout and "train samples/s" in proc.stdout
    run_dir = tmp_path / "e2e"
    records = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert [(r["cell"]["framework"], r["cell"]["model"], r["status"]) for r in records] == [
        ("torch", "mlp", "ok"), ("torch", "cnn", "ok")]
    for r in records:
        m = r["metrics"]
        assert m["accuracy"]["value"] > 50 and m["accuracy"]["unit"] == "%"
        assert len(m["train_throughput"]["samples"]) == 3 and m["train_throughput"]["direction"] == "higher"
        assert m["latency_p50_ms"]["value"] > 0 and m["peak_rss_mb"]["unit"] == "MiB"
        assert r["environment"]["threads"] >= 1 and r["framework"]["versions"]["torch"]
        assert r["environment"]["checkpoint"]["name"] == f"{r['cell']['model']}-digits0to4"
        assert len(m["accuracy_curve"]["samples"]) == 2  # evaluated after each of the 2 epochs
        assert m["train_gflops"]["value"] > 0 and 0 < m["train_utilisation"]["value"] < 100
        assert m["parameters"]["value"] == m["trainable_parameters"]["value"] > 0
        assert m["optimizer_state_mb"]["value"] == pytest.approx(2 * m["param_mb"]["value"])
        measured = r["environment"]["measurement"]
        assert measured["training"]["window_steps"] >= 5 and measured["inference"]["windows"] == 3
        assert r["environment"]["machine"]["cpu_model"] and r["environment"]["peak_gflops"] > 0
        names = {"mlp": 6, "cnn": 8}[r["cell"]["model"]]  # freeze none: every parameter trains
        assert len(r["environment"]["trained_parameters"]) == names and "head.kernel" in r["environment"]["trained_parameters"]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["machine"]["fingerprint"]
    assert manifest["peaks"]["cpu/fp32"]["gflops"] > 0
    assert (run_dir / "logs").is_dir()


@needs_plugin("zoo-torch")
def test_gpu_requested_without_a_gpu_fails_the_cell_with_the_fix(tmp_path):
    proc = run_zoo("bench", "-f", "torch", "-m", "mlp", "--device", "gpu", "--epochs", "1",
                   "--results-dir", str(tmp_path), "--run-id", "g")
    assert proc.returncode == 1
    (record,) = [json.loads(line) for line in (tmp_path / "g" / "results.jsonl").read_text().splitlines()]
    assert record["status"] == "failed" and record["error"]["phase"] == "prepare"
    assert "device 'gpu' was requested but torch sees only ['cpu']" in record["error"]["message"]
    assert "--device cpu" in record["error"]["message"]
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert "gpu/fp32" in manifest["peaks"]


@needs_plugin("zoo-torch")
def test_unknown_variant_lists_the_variants(tmp_path):
    proc = run_zoo("bench", "-f", "torch:turbo", "--results-dir", str(tmp_path))
    assert proc.returncode == 2
    assert "framework 'torch' has no variant 'turbo'; it offers: eager, compile" in proc.stderr


@needs_plugin("zoo-torch")
def test_default_variant_and_plain_name_are_the_same_cell():
    from zoo.plugin_host import load_plugins
    from harness.plugins.registry import build_registry
    from harness.plan.planner import plan_cells
    from harness.plan.request import BenchRequest

    registry = build_registry(load_plugins())
    cells = plan_cells(BenchRequest(frameworks=["torch", "pytorch:eager", "torch:compile"], models=["mlp"],
                                    precisions=["fp32", "bf16"]), registry, "r")
    assert sorted(p.cell.label + "/" + p.cell.precision for p in cells) == [
        "torch/bf16", "torch/fp32", "torch:compile/bf16", "torch:compile/fp32"]


@pytest.mark.slow
@needs_plugin("zoo-jax")
def test_jax_sync_variant_turns_cpu_async_dispatch_off_in_its_worker(tmp_path):
    proc = run_zoo("bench", "-f", "jax,jax:sync", "-m", "mlp", "--epochs", "1", "--windows", "2",
                   "--results-dir", str(tmp_path), "--run-id", "sync")
    assert proc.returncode == 0, proc.stderr
    records = {(r := json.loads(line))["cell"]["variant"]: r
               for line in (tmp_path / "sync" / "results.jsonl").read_text().splitlines()}
    assert records[""]["framework"]["details"]["cpu_async_dispatch"] is True
    assert records["sync"]["framework"]["details"]["cpu_async_dispatch"] is False
    # the same program: the same fine-tune, to the last digit of the accuracy
    assert records["sync"]["metrics"]["accuracy"]["value"] == records[""]["metrics"]["accuracy"]["value"]


@needs_plugin("zoo-torch")
def test_freeze_policy_that_does_not_fit_the_model_fails_before_measuring(tmp_path):
    proc = run_zoo("bench", "-f", "torch", "-m", "mlp", "--freeze", "last-7", "--results-dir", str(tmp_path))
    assert proc.returncode == 2 and "has only 2 blocks" in proc.stderr and "use last-2 or none" in proc.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
@needs_plugin("zoo-torch")
def test_pretrain_writes_a_checkpoint_with_a_model_card(tmp_path):
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"license": "CC0-1.0", "intended_use": "a test"}))
    out = tmp_path / "ckpt"
    proc = run_zoo("pretrain", "--model", "mlp", "--epochs", "2", "--threads", "1", "--name", "mlp-test",
                   "--out", str(out), "--card", str(card))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (entry,) = json.loads((out / "manifest.json").read_text())["checkpoints"]
    assert entry["name"] == "mlp-test" and (out / entry["file"]).exists()
    assert entry["command"] == "zoo pretrain --model mlp --task digits-0to4 --framework torch --epochs 2"
    card = entry["card"]
    assert card["license"] == "CC0-1.0" and card["intended_use"] == "a test"
    assert card["source_data"] and "2 epochs of Adam" in card["recipe"] and entry["command"] in card["recipe"]
    assert card["accuracy"] == f"{100 * entry['accuracy']:.2f}% on the digits-0to4 test images, measured by zoo-bench"


def test_pretrain_refuses_a_card_that_is_not_an_object_of_text(tmp_path):
    card = tmp_path / "card.json"
    card.write_text('["license"]')
    proc = run_zoo("pretrain", "--model", "mlp", "--out", str(tmp_path), "--card", str(card))
    assert proc.returncode == 2 and "must be a JSON object of text fields" in proc.stdout + proc.stderr
    assert not (tmp_path / "manifest.json").exists()
