"""What the machine's NVIDIA GPUs are, read without importing a framework: ``nvidia-smi``,
``/proc/driver/nvidia/version`` and the versions of the CUDA and cuDNN wheels
(``importlib.metadata``).

Two uses: the machine fingerprint and each record name the GPU model, driver, CUDA and cuDNN
(so ``zoo compare`` never mixes runs from different GPUs), and the peak FLOP/s is looked up for
the GPU the cells will use: the first device ``CUDA_VISIBLE_DEVICES`` makes visible, not
nvidia-smi's GPU 0. On a machine without ``nvidia-smi`` everything here says "no GPU" (``None``
or an empty list) and never raises.

nvidia-smi numbers GPUs in PCI bus order; CUDA does too only with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``
(its default, ``FASTEST_FIRST``, may reorder a machine with mixed GPU models). So an index in
``CUDA_VISIBLE_DEVICES`` is trusted on a machine whose GPUs are all one model, or when
``CUDA_DEVICE_ORDER=PCI_BUS_ID``; otherwise the device is reported as unknown, with that advice.
"""

from __future__ import annotations

import csv
import importlib.metadata
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

#: The fields asked of ``nvidia-smi --query-gpu`` (index and UUID select the visible device).
QUERY_FIELDS = ("index", "uuid", "name", "driver_version", "memory.total")
#: Wheels whose versions say which CUDA runtime and cuDNN the frameworks load (first found wins).
CUDA_RUNTIME_WHEELS = ("nvidia-cuda-runtime-cu12", "nvidia-cuda-runtime-cu13", "nvidia-cuda-runtime-cu11",
                       "nvidia-cuda-runtime")
CUDNN_WHEELS = ("nvidia-cudnn-cu12", "nvidia-cudnn-cu13", "nvidia-cudnn-cu11", "nvidia-cudnn")
NVIDIA_SMI_TIMEOUT_S = 20


@dataclass(frozen=True)
class GpuRow:
    """One GPU as ``nvidia-smi --query-gpu`` lists it."""

    index: int
    uuid: str
    name: str  # e.g. "NVIDIA H100 80GB HBM3"
    driver: str  # e.g. "550.54.15"
    memory_total_mib: int


def _nvidia_smi(*args: str, env: Mapping[str, str] | None = None) -> str | None:
    """``nvidia-smi ARGS`` standard output, or ``None`` when it is missing or fails."""
    try:
        proc = subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S,
                              env=None if env is None else dict(env))
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def parse_gpu_rows(text: str) -> list[GpuRow]:
    """The rows of ``nvidia-smi --query-gpu=index,uuid,name,driver_version,memory.total
    --format=csv,noheader`` (memory as ``81559 MiB``); malformed lines are left out."""
    rows = []
    for fields in csv.reader(text.splitlines(), skipinitialspace=True):
        if len(fields) != len(QUERY_FIELDS):
            continue
        index, uuid, name, driver, memory = (f.strip() for f in fields)
        mib = re.match(r"\d+", memory)
        if not index.isdigit():
            continue
        rows.append(GpuRow(int(index), uuid, name, driver, int(mib.group()) if mib else 0))
    return rows


def query_gpus(env: Mapping[str, str] | None = None) -> list[GpuRow]:
    """Every GPU ``nvidia-smi`` lists (it ignores ``CUDA_VISIBLE_DEVICES``); ``[]`` without one."""
    out = _nvidia_smi(f"--query-gpu={','.join(QUERY_FIELDS)}", "--format=csv,noheader", env=env)
    return parse_gpu_rows(out) if out else []


def select_visible(rows: list[GpuRow], env: Mapping[str, str] | None = None) -> tuple[GpuRow | None, str]:
    """The GPU a CUDA process started with ``env`` uses as its device 0, and ``""``; or ``None`` and
    why not. ``CUDA_VISIBLE_DEVICES`` may hold indices or (prefixes of) ``GPU-`` UUIDs; CUDA stops
    at the first invalid entry, so an invalid first entry means no GPU at all."""
    env = os.environ if env is None else env
    if not rows:
        return None, "nvidia-smi lists no GPU"
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        first = "0"
    else:
        first = visible.split(",")[0].strip()
        if not first:
            return None, "CUDA_VISIBLE_DEVICES is empty: no GPU is visible"
    if first.startswith("MIG-"):
        return None, (f"CUDA_VISIBLE_DEVICES={first} is a MIG slice, whose compute is a fraction of its GPU's: "
                      "no data-sheet figure applies")
    if first.startswith("GPU-"):
        matches = [r for r in rows if r.uuid.startswith(first)]
        if len(matches) == 1:
            return matches[0], ""
        return None, f"CUDA_VISIBLE_DEVICES={first} matches {len(matches)} of the GPUs nvidia-smi lists"
    if not first.isdigit():
        return None, f"CUDA_VISIBLE_DEVICES={visible!r} starts with {first!r}, which CUDA reads as no GPU"
    index = int(first)
    by_index = {r.index: r for r in rows}
    if index not in by_index:
        return None, f"CUDA_VISIBLE_DEVICES={visible!r} names GPU {index}; nvidia-smi lists {sorted(by_index)}"
    if len({r.name for r in rows}) > 1 and env.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID":
        return None, ("this machine has several GPU models and CUDA_DEVICE_ORDER is not PCI_BUS_ID, so CUDA's "
                      "device numbers may differ from nvidia-smi's: set CUDA_DEVICE_ORDER=PCI_BUS_ID")
    return by_index[index], ""


def visible_gpu(env: Mapping[str, str] | None = None) -> tuple[GpuRow | None, str]:
    """:func:`select_visible` over what ``nvidia-smi`` lists on this machine."""
    return select_visible(query_gpus(env), env)


def parse_cuda_driver(text: str) -> str | None:
    """The CUDA version the driver supports, from ``nvidia-smi``'s banner (``CUDA Version: 12.4``)."""
    m = re.search(r"CUDA Version\s*:\s*([0-9.]+)", text)
    return m.group(1) if m else None


def kernel_driver(path: Path = Path("/proc/driver/nvidia/version")) -> str | None:
    """The loaded kernel module's version (``NVRM version: ... Kernel Module  550.54.15 ...``)."""
    try:
        m = re.search(r"Kernel Module\s+([0-9.]+)", path.read_text())
    except OSError:
        return None
    return m.group(1) if m else None


def wheel_version(names: tuple[str, ...]) -> str | None:
    """``"name==version"`` of the first installed distribution of ``names``, else ``None``."""
    for name in names:
        try:
            return f"{name}=={importlib.metadata.version(name)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def stable_gpu(env: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """The GPU part of the machine fingerprint: model, memory, count, driver and the CUDA version
    the driver supports; ``None`` on a machine without a GPU. When GPUs exist but none is visible
    to CUDA, ``model`` is ``None`` and ``hidden`` says why."""
    rows = query_gpus(env)
    if not rows:
        return None
    row, why = select_visible(rows, env)
    banner = _nvidia_smi(env=env) or ""
    out: dict[str, Any] = {"model": row.name if row else None,
                           "memory_total_mib": row.memory_total_mib if row else None, "count": len(rows),
                           "driver": (row or rows[0]).driver, "cuda_driver": parse_cuda_driver(banner)}
    if row is None:
        out["hidden"] = why
    return out


def gpu_software() -> dict[str, str | None]:
    """The CUDA runtime and cuDNN wheels installed beside the harness (what pip-installed CUDA
    builds of the frameworks load), and the kernel driver; recorded, not fingerprinted (each
    framework's environment may bring its own)."""
    return {"cuda_runtime": wheel_version(CUDA_RUNTIME_WHEELS), "cudnn": wheel_version(CUDNN_WHEELS),
            "kernel_driver": kernel_driver()}


def describe_gpu(env: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """What a record says about its GPU: :func:`stable_gpu` plus :func:`gpu_software`; ``None``
    without a GPU."""
    stable = stable_gpu(env)
    return None if stable is None else {**stable, **gpu_software()}


def process_gpu_memory_mib(pid: int, env: Mapping[str, str] | None = None) -> int | None:
    """The GPU memory NVML counts for process ``pid`` now (``nvidia-smi --query-compute-apps``),
    summed over GPUs; ``None`` when nvidia-smi is absent or does not list the process (a
    container's PID namespace hides it)."""
    out = _nvidia_smi("--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits", env=env)
    if out is None:
        return None
    used = [int(f[1]) for f in csv.reader(out.splitlines(), skipinitialspace=True)
            if len(f) == 2 and f[0].strip() == str(pid) and f[1].strip().isdigit()]
    return sum(used) if used else None
