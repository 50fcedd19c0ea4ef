"""The conformance kit survives the adapter: ``zoo check-plugin`` runs the checks in a child
process with a timeout per check, so an adapter that calls ``os._exit``/``sys.exit``, hangs
(ignoring SIGTERM too), segfaults, aborts, is SIGKILLed or raises ``KeyboardInterrupt`` yields a
failed report naming the check it was in, the adapter method and the last lines of its output,
with a non-zero exit status, instead of silence and exit 0, a traceback, or a hang.

The misbehaving adapters are those of ``tests/faulty/faulty_plugin.py``, installed here as a
real distribution (an entry point in a ``*.dist-info``) so that discovery passes and the only
failure is the one under test."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from conftest import ROOT, make_distribution, run_zoo

FAULTY = ROOT / "tests" / "faulty"


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    site = make_distribution(tmp_path_factory.mktemp("site"), "zoo-faulty", {"faulty": "faulty_plugin"}, {})
    return {"PYTHONPATH": os.pathsep.join([str(site), str(FAULTY), os.environ.get("PYTHONPATH", "")]),
            "ZOO_STRICT_PLUGINS": "0"}


def check_plugin(env: dict[str, str], name: str, checks: str, *extra: str, timeout: float = 120):
    start = time.monotonic()
    proc = run_zoo("check-plugin", name, "-m", "mlp", "--checks", checks, "--json", *extra, env=env, timeout=timeout)
    assert proc.returncode == 1, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    report = json.loads(proc.stdout)
    return report, time.monotonic() - start


def crash_of(report: dict) -> dict:
    crashed = [r for r in report["results"] if r["subject"] == "check process"]
    assert len(crashed) == 1, report["results"]
    assert crashed[0]["status"] == "failed"
    return crashed[0]


def test_os_exit_0_in_the_adapter_fails_the_check_it_was_in(env):
    report, _ = check_plugin(env, "exit0", "load,export")
    crash = crash_of(report)
    assert report["ok"] is False and crash["check"] == "load"
    assert "in ExitsZero.evaluate" in crash["message"] and "exited with status 0" in crash["message"]
    assert "exit0: leaving through os._exit(0)" in crash["message"]  # the last line of its output
    assert report["checks"] == {"load": "failed", "export": "skipped"}


def test_sys_exit_in_the_adapter_fails_the_check_it_was_in(env):
    report, _ = check_plugin(env, "sysexit", "load")
    crash = crash_of(report)
    assert crash["check"] == "load" and "in SysExits.load_pretrained" in crash["message"]
    assert "SystemExit" in crash["message"] and "sysexit: calling sys.exit(0)" in crash["detail"]
    assert "faulty_plugin.py" in crash["detail"]  # the traceback of the SystemExit


def test_keyboard_interrupt_from_the_adapter_fails_its_check_and_keeps_the_earlier_results(env):
    report, _ = check_plugin(env, "interrupts", "load,export")
    crash = crash_of(report)
    assert crash["check"] == "export" and "KeyboardInterrupt" in crash["message"]
    assert "in Interrupts.export_weights" in crash["message"]
    assert report["checks"]["load"] == "passed"  # streamed out before the crash


@pytest.mark.parametrize("name, signame", [("segv", "SIGSEGV"), ("abort", "SIGABRT"), ("oomkill", "SIGKILL")])
def test_a_crash_in_native_code_fails_the_check_naming_the_signal(env, name, signame):
    report, _ = check_plugin(env, name, "fine-tune")
    crash = crash_of(report)
    assert crash["check"] == "fine-tune" and f"killed by {signame}" in crash["message"]
    assert ".fine_tune" in crash["message"]
    if name == "segv":  # faulthandler's Python stack is in the output shown
        assert "Segmentation fault" in crash["detail"] and "faulty_plugin.py" in crash["detail"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (not reaped yet) is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("name", ["hangpid", "stubborn"])
def test_a_hang_is_killed_after_the_timeout_with_its_stack_shown_and_no_process_left(env, tmp_path, name):
    pids = tmp_path / "pids"
    report, took = check_plugin({**env, "ZOO_TEST_PIDS": str(pids)}, name, "fine-tune", "--timeout", "5")
    crash = crash_of(report)
    assert crash["check"] == "fine-tune" and "did not finish within 5 s" in crash["message"]
    assert ".fine_tune" in crash["message"] and "--timeout" in crash["message"]
    assert "line" in crash["detail"] and "in fine_tune" in crash["detail"]  # faulthandler's dump of the hang
    assert took < 60
    pid = int(pids.read_text().split()[0])
    assert not _alive(pid), f"the hung check process {pid} is still running"


def test_processes_the_adapter_started_in_its_group_do_not_outlive_the_check(env, tmp_path):
    pids = tmp_path / "pids"
    proc = run_zoo("check-plugin", "spawner", "-m", "mlp", "--checks", "fine-tune", "--json",
                   env={**env, "ZOO_TEST_PIDS": str(pids)}, timeout=120)
    started = [int(p) for p in pids.read_text().split()]  # (same group, own session) per fine_tune call
    same_group = started[0::2]
    try:
        assert proc.returncode in (0, 1), proc.stderr
        deadline = time.monotonic() + 5
        while any(map(_alive, same_group)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(map(_alive, same_group)), "a child the adapter started outlived zoo check-plugin"
    finally:
        for pid in started:  # a new session escapes any group kill: end those here
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_run_isolated_returns_the_same_report_as_run_conformance_for_a_healthy_adapter(monkeypatch, env):
    from zoo.testing import run_conformance, run_isolated

    monkeypatch.setenv("PYTHONPATH", env["PYTHONPATH"])
    for path in reversed(env["PYTHONPATH"].split(os.pathsep)):
        if path:
            monkeypatch.syspath_prepend(path)
    isolated = run_isolated("healthy", checks=["load", "evaluate", "export"], models=["mlp"], timeout=60)
    in_process = run_conformance("healthy", checks=["load", "evaluate", "export"], models=["mlp"])
    assert isolated.to_dict() == in_process.to_dict()
    assert isolated.ok, isolated.format()


def test_run_isolated_reports_an_exiting_adapter_as_a_failure(monkeypatch, env):
    from zoo.testing import run_isolated

    monkeypatch.setenv("PYTHONPATH", env["PYTHONPATH"])
    report = run_isolated("exit0", checks=["load"], models=["mlp"], timeout=60)
    assert not report.ok and report.status_of("load") == "failed"
    assert "exit0: leaving through os._exit(0)" in report.explain("load")
