"""``zoo bench --feed device,host``: the feed is part of a cell (a key of its own, and the default
feed's key unchanged, so stored runs keep pairing), validated before anything runs, skipped with
the reason for an adapter that does not list it in ``Framework.feeds``, passed to the adapter as
``Runtime.feed``, and named in the record; the two feeds give the same accuracies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import INSTALLED_FRAMEWORKS, ROOT, needs_plugin, run_zoo
from harness.cli import main
from harness.plan.cells import Cell, CellPlan, Settings
from harness.plan.request import BenchRequest, PlanError
from harness.plan.validate import validate_request
from harness.results.loader import CELL_FIELDS, _cell_key
from zoo.contract import FEEDS, Framework, Runtime

#: The key of a default cell, as it was before feeds existed (stored runs pair on it).
DEFAULT_KEY = "torch-mlp-digits-cpu-fp32-b32-freeze_none-pretrained"


def test_the_default_feed_keeps_the_key_and_label_a_cell_always_had():
    cell = Cell("torch", "mlp", "digits")
    assert cell.feed == "" and cell.key == DEFAULT_KEY and cell.label == "torch"
    host = Cell("torch", "mlp", "digits", feed="host")
    assert host.key == DEFAULT_KEY + "-feed_host" and host.label == "torch (host feed)"
    assert Cell("torch", "mlp", "digits", variant="compile", env_label="2.12", feed="host").label == \
        "torch@2.12:compile (host feed)"


def test_hashed_keys_keep_the_feeds_apart_and_the_default_unchanged():
    """A name outside the plain set (or a too-long key) hashes the fields: the feed is one of
    them only when set, and never confused with an env_label of the same text."""
    plain = Cell("torch", "odd name", "digits")
    assert plain.key == Cell("torch", "odd name", "digits", feed="").key
    keys = {plain.key, Cell("torch", "odd name", "digits", feed="host").key,
            Cell("torch", "odd name", "digits", env_label="host").key}
    assert len(keys) == 3


def test_the_loader_pairs_records_with_and_without_a_feed():
    assert "feed" in CELL_FIELDS
    old = {"framework": "torch", "model": "mlp", "task": "digits", "device": "cpu", "precision": "fp32",
           "batch_size": 32, "freeze": "none", "init": "pretrained", "variant": "", "env_label": ""}
    assert _cell_key(old) == DEFAULT_KEY  # a record written before feeds existed
    assert _cell_key({**old, "feed": ""}) == DEFAULT_KEY
    assert _cell_key({**old, "feed": "host"}) == DEFAULT_KEY + "-feed_host"


def test_a_plan_round_trips_its_cells_feed():
    plan = CellPlan("r", Cell("jax", "mlp", "digits", feed="host"), Settings(), ("zoo.builtin",))
    assert CellPlan.from_dict(json.loads(json.dumps(plan.to_dict()))).cell.feed == "host"


def test_runtime_and_framework_defaults_keep_old_adapters_working():
    assert FEEDS == ("device", "host")
    assert Runtime("cpu", "fp32", 1, 0).feed == "device"
    assert Framework.feeds == ("device",)


@pytest.mark.parametrize("feeds, message", [
    (["disk"], "--feed: unknown feed 'disk'; choose from: device, host"),
    (["host", "host"], "--feed host,host lists a feed twice"),
    ([], "--feed needs at least one feed"),
])
def test_a_bad_feed_is_refused_naming_the_flag(feeds, message):
    with pytest.raises(PlanError, match=message.replace("(", r"\(")):
        validate_request(BenchRequest(feeds=feeds, threads=1))


def test_the_cli_refuses_an_unknown_feed_before_anything_runs(tmp_path):
    proc = run_zoo("bench", "-m", "mlp", "--feed", "device,disk", "--results-dir", str(tmp_path / "r"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--feed: unknown feed 'disk'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists()


@needs_plugin("zoo-torch")
def test_the_planner_makes_a_cell_per_feed_and_skips_a_feed_the_adapter_lacks(monkeypatch):
    from harness.plan.planner import plan_cells
    from harness.plugins.registry import build_registry
    from zoo.plugin_host import load_plugins
    from zoo_torch.adapter import TorchFramework

    registry = build_registry(load_plugins())
    request = BenchRequest(frameworks=["torch"], models=["mlp"], feeds=["device", "host"], threads=1)
    planned = plan_cells(request, registry, "r")
    assert [(p.cell.feed, p.cell.key) for p in planned] == [("", DEFAULT_KEY), ("host", DEFAULT_KEY + "-feed_host")]
    assert all(p.plan is not None and p.plan.cell == p.cell for p in planned)
    # an adapter that declares no feeds has the contract's default, ("device",): its host cell is skipped
    monkeypatch.delattr(TorchFramework, "feeds")
    device, host = plan_cells(request, registry, "r")
    assert device.plan is not None and host.plan is None
    assert host.skip_reason == ("torch does not implement the 'host' feed (it offers: device); its cells run "
                                "with --feed device")
    # and a run of the default feed alone is what it always was
    (only,) = plan_cells(BenchRequest(frameworks=["torch"], models=["mlp"], threads=1), registry, "r")
    assert only.cell == Cell("torch", "mlp", "digits", batch_size=only.cell.batch_size, freeze=only.cell.freeze,
                             init=only.cell.init)


@pytest.mark.slow
@pytest.mark.skipif(sorted(INSTALLED_FRAMEWORKS) != ["jax", "tf", "torch"],
                    reason=f"needs zoo-torch, zoo-tf and zoo-jax, have {INSTALLED_FRAMEWORKS}")
def test_bench_runs_each_framework_with_both_feeds_to_the_same_accuracy(tmp_path):
    proc = run_zoo("bench", "-f", "torch,tf,jax", "-m", "mlp", "-t", "digits", "--epochs", "1", "--windows", "2",
                   "--threads", "1", "--feed", "device,host", "--results-dir", str(tmp_path), "--run-id", "feeds")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = [json.loads(line) for line in (tmp_path / "feeds" / "results.jsonl").read_text().splitlines()]
    assert len(records) == 6 and all(r["status"] == "ok" for r in records), [r.get("error") for r in records]
    by = {(r["cell"]["framework"], r["cell"]["feed"]): r for r in records}
    assert sorted(by) == sorted((fw, feed) for fw in ("jax", "tf", "torch") for feed in ("", "host"))
    assert len({r["cell"]["key"] for r in records}) == 6
    for fw in ("jax", "tf", "torch"):
        device, host = by[(fw, "")], by[(fw, "host")]
        assert device["cell"]["key"] == f"{fw}-mlp-digits-cpu-fp32-b32-freeze_none-pretrained"
        assert host["cell"]["key"] == device["cell"]["key"] + "-feed_host"
        assert device["framework"]["details"]["feed"].startswith("device-resident")
        assert host["framework"]["details"]["feed"].startswith("host pipeline: batches gathered on the host")
        assert host["metrics"]["accuracy"]["value"] == device["metrics"]["accuracy"]["value"], fw
    assert "(host feed)" in proc.stdout  # the table tells the two rows apart


FAULTY = str(Path(__file__).parent / "faulty")


def test_a_cli_run_skips_the_host_cell_of_an_adapter_without_it_and_records_why(tmp_path, monkeypatch, capsys):
    """tests/faulty's "healthy" adapter declares no feeds: its device cell runs, its host cell is
    a skipped record with the planner's reason."""
    monkeypatch.syspath_prepend(FAULTY)
    monkeypatch.setenv("PYTHONPATH", FAULTY + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("NO_COLOR", "1")
    code = main(["-p", "faulty_plugin", "bench", "-f", "healthy", "-m", "mlp", "--epochs", "1", "--windows", "1",
                 "--feed", "device,host", "--results-dir", str(tmp_path), "--run-id", "skip"])
    assert code == 0, capsys.readouterr()
    records = {r["cell"]["feed"]: r for r in map(json.loads, (tmp_path / "skip" / "results.jsonl").read_text().splitlines())}
    assert records[""]["status"] == "ok" and records["host"]["status"] == "skipped"
    assert "healthy does not implement the 'host' feed (it offers: device)" in records["host"]["error"]["message"]


def test_the_worker_refuses_a_feed_its_adapter_lacks_instead_of_mislabelling_the_record(tmp_path, monkeypatch):
    """A plan made against another build of the plugin (``--python``) may ask for a feed the
    worker's adapter does not list: the cell fails, naming the feed, rather than run the default
    feed under the host feed's key."""
    from harness.plan.planner import plan_cells
    from harness.plugins.registry import build_registry
    from zoo.plugin_host import worker_host

    monkeypatch.syspath_prepend(FAULTY)
    (planned,) = plan_cells(BenchRequest(frameworks=["healthy"], models=["mlp"], epochs=1, windows=1, threads=1),
                            build_registry(worker_host(["faulty_plugin"])), "r")
    plan = replace(planned.plan, cell=replace(planned.cell, feed="host"))
    (tmp_path / "plan.json").write_text(json.dumps(plan.to_dict()))
    env = {**os.environ, "PYTHONPATH": FAULTY + os.pathsep + os.environ.get("PYTHONPATH", ""), **plan.env}
    proc = subprocess.run([sys.executable, "-m", "harness.worker", str(tmp_path / "plan.json"),
                           str(tmp_path / "record.json")], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["status"] == "failed" and record["cell"]["feed"] == "host"
    assert "asks for the 'host' feed" in record["error"]["message"]
    assert "implements only: device" in record["error"]["message"]
