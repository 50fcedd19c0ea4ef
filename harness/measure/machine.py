"""A description of the machine: stable fields (the fingerprint that decides what may be compared
with what) and volatile ones (load, free memory) recorded for context.

The stable fields include the GPU the cells use (:func:`harness.measure.gpu_info.stable_gpu`:
model, memory, count, driver, the driver's CUDA version), so runs on different GPUs, or on one
GPU under different drivers, get different fingerprints and ``zoo compare`` refuses to mix them.
On a machine without a GPU the field is ``None`` and left out of the hash, so CPU fingerprints
are what they were before GPUs were recorded. The CUDA runtime and cuDNN wheels are recorded in
``gpu_software`` but not hashed: they belong to a framework's environment, not to the machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

from harness.measure import gpu_info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "sse4")))
    except OSError:
        pass
    return []


def _memory_total_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def stable_info() -> dict[str, Any]:
    return {
        "system": platform.system(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "logical_cpus": os.cpu_count() or 0,
        "memory_total_bytes": _memory_total_bytes(),
        "python": platform.python_version(),
        "gpu": gpu_info.stable_gpu(),
        "gpu_software": gpu_info.gpu_software(),
    }


#: Stable fields recorded in the manifest but not hashed into the fingerprint.
NOT_FINGERPRINTED = ("gpu_software",)


def fingerprint(info: dict[str, Any] | None = None) -> str:
    """16 hex digits identifying the machine: a hash of :func:`stable_info` without
    :data:`NOT_FINGERPRINTED` and without ``gpu`` when there is none (so a CPU machine keeps the
    fingerprint it had before GPUs were recorded)."""
    info = stable_info() if info is None else info
    hashed = {k: v for k, v in info.items() if k not in NOT_FINGERPRINTED and not (k == "gpu" and v is None)}
    return hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:16]


def volatile_info() -> dict[str, Any]:
    out: dict[str, Any] = {"hostname": platform.node()}
    try:
        out["loadavg"] = list(os.getloadavg())
    except OSError:
        pass
    return out


def harness_commit(repo: Path | None = None) -> dict[str, Any]:
    """The git commit of the harness, whether the tree had changes, and a hash of those changes
    (so two runs from one uncommitted tree can still be told to be the same install)."""
    repo = repo or Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=5).stdout.strip())
        out: dict[str, Any] = {"commit": commit, "dirty": dirty}
        if dirty:
            diff = subprocess.run(["git", "-C", str(repo), "diff", "HEAD", "--no-color"], capture_output=True,
                                  timeout=10).stdout
            out["diff_sha256"] = hashlib.sha256(diff).hexdigest()
        return out
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def record_info() -> dict[str, Any]:
    """What each record carries about its machine: the fingerprint, the CPU and the GPU (a dict
    from :func:`harness.measure.gpu_info.describe_gpu`, ``None`` without one)."""
    stable = _cached_stable()
    return {"fingerprint": fingerprint(stable), "cpu_model": stable["cpu_model"], "cpu_flags": stable["cpu_flags"],
            "gpu": _cached_gpu()}


@lru_cache(maxsize=1)
def _cached_stable() -> dict[str, Any]:
    return stable_info()


@lru_cache(maxsize=1)
def _cached_gpu() -> dict[str, Any] | None:
    """The record's GPU: model, memory, count, driver, CUDA, cuDNN (``None`` without a GPU)."""
    return gpu_info.describe_gpu()


def gpu_name() -> str:
    """The model name of the GPU the cells use (the first one ``CUDA_VISIBLE_DEVICES`` shows) as
    ``nvidia-smi`` reports it, or ``""`` without one."""
    row, _ = gpu_info.visible_gpu()
    return row.name if row else ""
