"""GPU sampling per cell (#17 defects 7 and 9): the NVML process footprint and the GPU's clocks,
power, temperature, utilisation and throttle reasons, per phase, from looping nvidia-smi queries.

On a machine without a GPU a stand-in ``nvidia-smi`` (a script first on PATH that answers the
harness's queries with canned lines in nvidia-smi's formats, looping at the ``-lms`` interval it
is given) stands in for the driver's; the parsers and the aggregation are checked on recorded
lines. The checks against a real GPU are at the end, skipped without one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT
from harness.measure import gpu_info
from harness.measure.trackers import BUILTIN_TRACKERS
from harness.measure.trackers.gpu_clocks import (
    ENERGY,
    POWER,
    POWER_PEAK,
    SM_CLOCK,
    TEMP_MAX,
    UTIL,
    GpuClocksTracker,
    aggregate,
    decode_throttle,
    energy_j,
    parse_sample,
)
from harness.measure.trackers.gpu_process_memory import (
    CELL_METRIC,
    PHASE_METRICS,
    AppRow,
    GpuProcessMemoryTracker,
    parse_app_row,
    sweep_totals,
)
from harness.measure.trackers.smi_loop import SmiLoop, parse_timestamp
from harness.plan.cells import Cell, CellPlan, Settings
from harness.results.metrics import BUILTIN
from test_device_memory_phases import DEVICE_PLUGIN
from zoo.trackers import TrackerContext

GPUS = [(0, "GPU-5c2d1e3a-0000-4a6b-9d1e-000000000000", "NVIDIA H200"),
        (1, "GPU-5c2d1e3a-1111-4a6b-9d1e-111111111111", "NVIDIA H200")]
#: A sample line of the stand-in: 1980 MHz SM, 2619 MHz memory, 500 W, 61 C, 97 %, SW power cap.
SAMPLE = "1980, 2619, 500.00, 61, 97, 0x0000000000000004"
PHASES = ("load", "fine_tune", "inference", "latency", "training")
CELL_PHASES = ("load", "fine_tune", "inference_throughput", "latency", "train_throughput")

STAND_IN = r'''#!{python}
"""A stand-in nvidia-smi for tests: the queries zoo-bench makes, answered in nvidia-smi's formats."""
import os
import sys
import time

GPUS = {gpus!r}
SAMPLE = {sample!r}
args = sys.argv[1:]
log = os.environ.get("STAND_IN_LOG")
if log:
    with open(log, "a") as fh:
        fh.write(f"{{os.getpid()}} {{' '.join(args)}}\n")


def option(name):
    for i, a in enumerate(args):
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
        if a == name and i + 1 < len(args):
            return args[i + 1]
    return None


def stamp():
    t = time.time()
    return time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(t)) + f".{{int(t * 1000) % 1000:03d}}"


gpu_query, apps_query, loop = option("--query-gpu"), option("--query-compute-apps"), option("-lms")
if not args:
    print("| NVIDIA-SMI 550.54.15    Driver Version: 550.54.15    CUDA Version: 12.4 |")
    sys.exit(0)
if gpu_query and gpu_query.startswith("index"):
    for index, uuid, name in GPUS:
        print(f"{{index}}, {{uuid}}, {{name}}, 550.54.15, 143771 MiB")
    sys.exit(0)
if gpu_query and "clocks_throttle_reasons" in gpu_query and os.environ.get("STAND_IN_NEW_DRIVER"):
    print('Field "clocks_throttle_reasons.active" is not a valid field to query.')
    sys.exit(2)
selected = option("-i")
if gpu_query and selected not in [u for _, u, _ in GPUS]:
    print("No devices were found")
    sys.exit(6)


def lines():
    if gpu_query:
        return [f"{{stamp()}}, {{SAMPLE}}"]
    out = []
    path = os.environ.get("SIMULATED_GPU_FILE", "")
    if os.path.exists(path) and not os.environ.get("STAND_IN_HIDE_PID"):
        with open(path) as fh:
            out.append(f"{{os.getppid()}}, {{GPUS[1][1]}}, {{fh.read().strip()}}")
    out.append(f"999999, {{GPUS[0][1]}}, 2048")  # another process: never counted
    t = stamp()
    return [f"{{t}}, {{line}}" for line in out]


while True:
    for line in lines():
        print(line)  # no flush: Python buffers its output to a pipe, not to a terminal
    if loop is None:
        break
    time.sleep(int(loop) / 1000)
'''


def install_stand_in(directory: Path) -> Path:
    """Write the stand-in ``nvidia-smi`` into ``directory``; returns the directory (for PATH)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "nvidia-smi"
    path.write_text(STAND_IN.format(python=sys.executable, gpus=GPUS, sample=SAMPLE))
    path.chmod(0o755)
    return directory


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """The stand-in first on PATH and its invocations logged; returns the log's path."""
    directory = install_stand_in(tmp_path / "bin")
    log = tmp_path / "nvidia-smi.log"
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("STAND_IN_LOG", str(log))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return log


def invocations(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


# --- parsing and aggregation, on lines in nvidia-smi's formats

STAMP = "2024/03/12 10:00:00.123"


@pytest.mark.parametrize("line, expected", [
    (f"{STAMP}, 1980, 2619, 699.62, 67, 100, 0x0000000000000000", (1980.0, 2619.0, 699.62, 67.0, 100.0, 0)),
    (f"{STAMP}, 345, 2619, 74.81, 29, 0, 0x0000000000000001", (345.0, 2619.0, 74.81, 29.0, 0.0, 1)),
    (f"{STAMP}, 1410, 1215, [N/A], 45, 12, 0x0000000000000004", (1410.0, 1215.0, None, 45.0, 12.0, 4)),
    (f"{STAMP}, 1755, 2619, 412.30, 58, 98, [Not Supported]", (1755.0, 2619.0, 412.3, 58.0, 98.0, None)),
    (f"{STAMP}, 1530, 877, Not Supported, 41, [N/A], 0x0000000000000044", (1530.0, 877.0, None, 41.0, None, 0x44)),
    (f"{STAMP}, [N/A], [N/A], [N/A], [N/A], [N/A], [N/A]", (None, None, None, None, None, None)),
])
def test_a_query_line_is_parsed_and_unreported_fields_are_none(line, expected):
    sample = parse_sample(line)
    assert sample is not None
    assert (sample.sm_mhz, sample.mem_mhz, sample.power_w, sample.temp_c, sample.util_pct, sample.throttle) == expected
    assert sample.t == pytest.approx(parse_timestamp(STAMP)) and sample.t is not None


@pytest.mark.parametrize("line", [
    "No devices were found",
    'Field "clocks_throttle_reasons.active" is not a valid field to query.',
    "Unable to determine the device handle for GPU0000:3B:00.0: Unknown Error",
    f"{STAMP}, 1980, 2619, 699.62, 67, 100",  # a field short
    "a, b, c, d, e, f, g",
])
def test_a_line_that_is_not_a_sample_is_ignored(line):
    assert parse_sample(line) is None


@pytest.mark.parametrize("mask, names", [
    (0x0, []),
    (0x1, ["gpu_idle"]),
    (0x4, ["sw_power_cap"]),
    (0x44, ["sw_power_cap", "hw_thermal_slowdown"]),
    (0x88, ["hw_slowdown", "hw_power_brake_slowdown"]),
    (0x120, ["sw_thermal_slowdown", "display_clock_setting"]),
    (0x202, ["applications_clocks_setting", "bit_0x200"]),
])
def test_throttle_bits_decode_to_nvidia_smis_names(mask, names):
    assert decode_throttle(mask) == names


def test_a_phase_aggregates_median_clock_mean_and_peak_power_energy_and_throttle_shares():
    lines = [f"{STAMP}, 1980, 2619, 600.0, 60, 100, 0x0000000000000000",
             f"{STAMP}, 1755, 2619, 700.0, 66, 98, 0x0000000000000004",
             f"{STAMP}, 1410, 2619, 700.0, 71, 96, 0x0000000000000044",
             f"{STAMP}, 1965, 2619, [N/A], 64, [N/A], [N/A]"]
    times = [10.05, 10.15, 10.25, 10.35]
    samples = [(t, parse_sample(line)) for t, line in zip(times, lines)]
    metrics, details = aggregate(samples, "train_throughput", 10.0, 10.4)
    assert metrics == {
        "training_gpu_sm_clock_mhz": pytest.approx((1755 + 1965) / 2),
        "training_gpu_power_w": pytest.approx(2000 / 3),
        "training_gpu_power_peak_w": 700.0,
        # 600 W held from 10.0 to 10.05, trapezoids to 10.25, 700 W held to 10.4
        "training_gpu_energy_j": pytest.approx(600 * 0.05 + 650 * 0.1 + 700 * 0.1 + 700 * 0.15),
        "training_gpu_temp_max_c": 71.0,
        "training_gpu_util_pct": pytest.approx(98.0),
    }
    assert details["samples"] == 4 and details["mem_clock_mhz"] == 2619
    assert details["throttle_reasons"] == {"hw_thermal_slowdown": pytest.approx(1 / 3, abs=1e-3),
                                           "sw_power_cap": pytest.approx(2 / 3, abs=1e-3)}
    assert "not_reported" not in details


def test_fields_a_gpu_never_reports_give_no_metric_and_are_named():
    samples = [(1.0 + i / 10, parse_sample(f"{STAMP}, 1410, 1215, [N/A], [N/A], 40, [Not Supported]"))
               for i in range(3)]
    metrics, details = aggregate(samples, "latency", 1.0, 1.3)
    assert metrics == {"latency_gpu_sm_clock_mhz": 1410.0, "latency_gpu_util_pct": 40.0}
    assert details["not_reported"] == ["power.draw", "temperature.gpu", "clocks_throttle_reasons.active"]
    assert aggregate([], "latency", 1.0, 1.3) == ({}, {"samples": 0})


def test_energy_is_power_integrated_with_the_edges_held():
    assert energy_j([(1.0, 100.0)], 0.0, 3.0) == pytest.approx(300.0)
    assert energy_j([(1.0, 100.0), (2.0, 300.0)], 0.0, 3.0) == pytest.approx(100 + 200 + 300)
    assert energy_j([], 0.0, 3.0) == 0.0


def test_compute_app_rows_are_summed_per_sweep_over_gpus():
    rows = [parse_app_row(line) for line in (
        f"{STAMP}, 4242, GPU-aaaa, 1536", f"{STAMP}, 4242, GPU-bbbb, 512",
        f"{STAMP}, 4242, GPU-aaaa, [N/A]", "No running processes found")]
    assert rows[0] == AppRow(parse_timestamp(STAMP), 4242, "GPU-aaaa", 1536.0)
    assert rows[2].used_mib is None and rows[3] is None
    timed = [(0.0, rows[0]), (0.0, rows[1]), (0.1, AppRow(None, 4242, "GPU-aaaa", 2048.0)),
             (0.1, AppRow(None, 4242, "GPU-bbbb", 512.0)), (0.2, rows[2])]
    assert sweep_totals(timed, 0.1) == [2048.0, 2560.0]


def test_every_metric_the_gpu_trackers_write_is_in_the_catalogue():
    expected = {"gpu_sm_clock_mhz": "MHz", "gpu_power_w": "W", "gpu_power_peak_w": "W", "gpu_energy_j": "J",
                "gpu_temp_max_c": "C", "gpu_util_pct": "%", "nvml_mb": "MiB"}
    tables = {"gpu_sm_clock_mhz": SM_CLOCK, "gpu_power_w": POWER, "gpu_power_peak_w": POWER_PEAK,
              "gpu_energy_j": ENERGY, "gpu_temp_max_c": TEMP_MAX, "gpu_util_pct": UTIL, "nvml_mb": PHASE_METRICS}
    for what, table in tables.items():
        assert set(table) == set(CELL_PHASES)
        for phase, name in table.items():
            assert name in BUILTIN and BUILTIN[name].unit == expected[what], name
            assert BUILTIN[name].phase == phase
    assert BUILTIN[CELL_METRIC].unit == "MiB"
    assert {"gpu_clocks", "gpu_process_memory", "host_memory"} <= set(BUILTIN_TRACKERS)


# --- the sampling loop and the trackers in this process, on the stand-in

def test_the_loop_gets_each_line_as_it_is_printed_not_at_exit(stand_in):
    loop = SmiLoop("nvidia-smi", ["--query-gpu=timestamp,clocks.sm", "-i", GPUS[0][1]], interval_ms=50)
    try:
        time.sleep(0.6)
        assert len(loop.between(0, time.time())) >= 4, loop.tail()  # a block-buffered pipe would hold them all
        assert loop.transport == "pseudo terminal" and not loop.exited()
    finally:
        loop.close()
    assert loop.exited() == ""
    pid = int(invocations(stand_in)[0].split()[0])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # ended and reaped


def test_a_cpu_cell_starts_no_sampler_and_records_nothing(stand_in):
    context = TrackerContext("torch", "cpu", 1, os.getpid())
    for cls in (GpuClocksTracker, GpuProcessMemoryTracker):
        tracker = cls(context)
        tracker.start("fine_tune")
        assert tracker.stop("fine_tune") == {} and tracker.finish() == {} and tracker.details() == {}
    assert invocations(stand_in) == []


def test_without_nvidia_smi_a_gpu_cell_records_no_figure_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on it
    context = TrackerContext("torch", "gpu", 1, os.getpid())
    for cls in (GpuClocksTracker, GpuProcessMemoryTracker):
        tracker = cls(context)
        tracker.start("fine_tune")
        assert tracker.stop("fine_tune") == {} and tracker.finish() == {}
        assert "nvidia-smi is not on PATH" in tracker.details()["reason"]


def test_a_process_the_driver_does_not_list_gets_no_footprint_not_zero(stand_in, monkeypatch, tmp_path):
    monkeypatch.setenv("STAND_IN_HIDE_PID", "1")  # as in a container: only other (host) pids are listed
    tracker = GpuProcessMemoryTracker(TrackerContext("torch", "gpu", 1, os.getpid()))
    try:
        tracker.start("fine_tune")
        time.sleep(0.5)
        assert tracker.stop("fine_tune") == {}
        assert tracker.finish() == {}
    finally:
        tracker.close()
    why = tracker.details()["phases"]["fine_tune"]
    assert f"did not list pid {os.getpid()}" in why and "1 other" in why


def test_a_driver_that_renamed_the_throttle_field_is_asked_the_new_name(stand_in, monkeypatch):
    monkeypatch.setenv("STAND_IN_NEW_DRIVER", "1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    tracker = GpuClocksTracker(TrackerContext("torch", "gpu", 1, os.getpid()))
    try:
        tracker.start("latency")
        time.sleep(0.4)
        metrics = tracker.stop("latency")
    finally:
        tracker.close()
    assert metrics["latency_gpu_sm_clock_mhz"] == 1980.0
    looped = [line for line in invocations(stand_in) if "-lms" in line]
    assert len(looped) == 1 and "clocks_event_reasons.active" in looped[0] and f"-i {GPUS[1][1]}" in looped[0]
    assert "clocks_event_reasons.active" in tracker.details()["method"]


# --- a real worker process, the stand-in as its nvidia-smi

@pytest.mark.slow
def test_a_gpu_cell_records_footprint_and_clocks_per_phase_from_subprocess_to_record(stand_in, tmp_path):
    (tmp_path / "simgpu_plugin.py").write_text(DEVICE_PLUGIN)
    memory_file = tmp_path / "device-mib"
    plan = CellPlan(run_id="gpu", cell=Cell("simgpu", "mlp", "digits", device="gpu", init="scratch"),
                    settings=Settings(epochs=1, threads=1, windows=1, latency_samples=5, warmup_cap=3),
                    modules=("simgpu_plugin",), trackers=tuple(BUILTIN_TRACKERS))
    (tmp_path / "plan.json").write_text(json.dumps(plan.to_dict()))
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "CUDA_VISIBLE_DEVICES": "1",
           "SIMULATED_GPU_FILE": str(memory_file), "SIMULATED_GPU_HOLD_S": "0.35"}
    proc = subprocess.run([sys.executable, "-m", "harness.worker", str(tmp_path / "plan.json"),
                           str(tmp_path / "record.json")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["status"] == "ok", record["error"]
    m = {name: v["value"] for name, v in record["metrics"].items()}
    trackers = record["environment"]["measurement"]["trackers"]

    # the process footprint: 300 MiB of context, 64 of weights, and each phase's largest allocation
    assert {p: m.get(f"{p}_nvml_mb") for p in PHASES} == {
        "load": 364.0, "fine_tune": 412.0, "inference": 396.0, "latency": 365.0, "training": 412.0}, \
        trackers["gpu_process_memory"]
    assert m["nvml_peak_mb"] == 412.0
    assert all(m[f"{p}_device_peak_mb"] <= m[f"{p}_nvml_mb"] for p in PHASES)  # allocator within the footprint

    # the clocks of GPU 1, the one CUDA_VISIBLE_DEVICES names
    clocks = trackers["gpu_clocks"]
    assert GPUS[1][1] in clocks["gpu"] and f"-i {GPUS[1][1]}" in clocks["method"]
    assert clocks["output"] == "pseudo terminal"
    for phase, cell_phase in zip(PHASES, CELL_PHASES):
        seen = clocks["phases"][cell_phase]
        assert seen["samples"] >= 2, (phase, seen)
        assert (m[f"{phase}_gpu_sm_clock_mhz"], m[f"{phase}_gpu_power_w"], m[f"{phase}_gpu_power_peak_w"],
                m[f"{phase}_gpu_temp_max_c"], m[f"{phase}_gpu_util_pct"]) == (1980.0, 500.0, 500.0, 61.0, 97.0)
        assert m[f"{phase}_gpu_energy_j"] == pytest.approx(500.0 * seen["seconds"], rel=0.01)
        assert seen["throttle_reasons"] == {"sw_power_cap": 1.0} and seen["mem_clock_mhz"] == 2619.0
    assert record["metrics"]["training_gpu_energy_j"]["unit"] == "J"

    # both loops ended with the cell
    loops = [int(line.split()[0]) for line in invocations(stand_in) if "-lms" in line]
    assert len(loops) == 2
    for pid in loops:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


# --- on a real GPU

REAL_GPUS = gpu_info.query_gpus()
needs_gpu = pytest.mark.skipif(not REAL_GPUS, reason="no NVIDIA GPU: nvidia-smi is missing or lists no GPU here")


@needs_gpu
def test_a_real_gpu_reports_clocks_power_and_known_throttle_reasons():
    tracker = GpuClocksTracker(TrackerContext("torch", "gpu", 1, os.getpid()))
    try:
        tracker.start("latency")
        time.sleep(1.5)
        metrics = tracker.stop("latency")
    finally:
        tracker.close()
    details = tracker.details()
    assert details["output"] == "pseudo terminal", details
    assert details["phases"]["latency"]["samples"] >= 5, details
    assert metrics["latency_gpu_sm_clock_mhz"] > 0, details
    if "power.draw" not in details["phases"]["latency"].get("not_reported", []):
        assert metrics["latency_gpu_power_w"] > 0 and metrics["latency_gpu_energy_j"] > 0
    reasons = details["phases"]["latency"].get("throttle_reasons", {})
    assert not [r for r in reasons if r.startswith("bit_")], reasons


@needs_gpu
def test_a_real_cuda_allocation_shows_in_the_process_footprint():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA device here (a CPU build of torch)")
    tracker = GpuProcessMemoryTracker(TrackerContext("torch", "gpu", 1, os.getpid()))
    try:
        tracker.start("fine_tune")
        block = torch.empty(512 * 2**20, dtype=torch.uint8, device="cuda")
        torch.cuda.synchronize()
        time.sleep(1.0)
        metrics = tracker.stop("fine_tune")
        del block
    finally:
        tracker.close()
    if not metrics:
        pytest.skip(f"the driver does not list this process: {tracker.details()['phases']['fine_tune']}")
    assert metrics["fine_tune_nvml_mb"] >= 512
