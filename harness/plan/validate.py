"""Every setting of a request checked before anything runs: zero, negative and non-finite values
and values this machine cannot honour are refused with the flag's name and what to give instead.
Nothing is replaced silently by a default."""

from __future__ import annotations

import math
import os
import re
from typing import Any, Mapping, Sequence

from zoo.contract import FEEDS

from harness.plan.request import BenchRequest, PlanError

#: Seeds feed NumPy's generator and every framework's: non-negative and below 2**32 for all.
MAX_SEED = 2**32 - 1
#: The label of a framework's environment: ``2.12`` in ``-f torch@2.12``.
ENV_LABEL = re.compile(r"[A-Za-z0-9_.-]+")
#: One ``CUDA_VISIBLE_DEVICES`` entry: a GPU index, a GPU UUID (or a prefix of one), a MIG instance.
GPU_ENTRY = re.compile(r"[0-9]+|GPU-[0-9A-Fa-f-]+|MIG-[0-9A-Za-z/-]+")


def _int(flag: str, value: Any, minimum: int, maximum: int | None = None, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlanError(f"{flag} must be a whole number, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise PlanError(f"{flag} must be {bound}, got {value}{hint}")


def _positive_finite(flag: str, value: Any, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise PlanError(f"{flag} must be a finite number above 0, got {value!r}{hint}")


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity), which is what a cell can be pinned to."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def validate_request(request: BenchRequest) -> None:
    """Raise :class:`PlanError` naming the first setting of ``request`` that cannot be run."""
    if request.batch_size is not None:
        _int("--batch-size", request.batch_size, 1)
    if request.epochs is not None:
        _int("--epochs", request.epochs, 1)
    if request.learning_rate is not None:
        _positive_finite("--lr", request.learning_rate, " (Adam's step size; e.g. 1e-3)")
    cpus = available_cpus()
    _int("--threads", request.threads, 1, cpus, f": this process may use {cpus} CPU(s), and a cell is pinned to "
         f"its own threads' worth of them")
    _int("--seed", request.seed, 0, MAX_SEED)
    _int("--windows", request.windows, 1)
    _int("--window-steps", request.window_steps, 0, hint=" (0 sizes each window to at least 50 ms on a CPU, 1 s on a GPU)")
    _int("--warmup-cap", request.warmup_cap, 1)
    _int("--repeats", request.repeats, 1)
    _int("--retry-disturbed", request.retry_disturbed, 0, 10)
    _positive_finite("--timeout", request.timeout_s, " seconds (it is the limit that stops a hung cell)")
    validate_feeds(request.feeds)
    validate_pythons(request.pythons)
    validate_gpus(request.gpus, request.parallel_gpus, request.device)


def validate_feeds(feeds: Sequence[str]) -> None:
    """``--feed``: at least one of :data:`zoo.contract.FEEDS`, each once."""
    if not feeds:
        raise PlanError(f"--feed needs at least one feed; choose from: {', '.join(FEEDS)} (default: device)")
    for feed in feeds:
        if feed not in FEEDS:
            raise PlanError(f"--feed: unknown feed {feed!r}; choose from: {', '.join(FEEDS)} (device = the split "
                            "staged on the device, the default; host = batches copied from host memory by the "
                            "framework's input pipeline), e.g. --feed device,host")
    if len(set(feeds)) != len(feeds):
        raise PlanError(f"--feed {','.join(feeds)} lists a feed twice; list each once")


def check_env_label(spec: str, label: str) -> None:
    """``-f NAME@LABEL`` / ``--python NAME@LABEL=PATH``: the label is a plain name."""
    if not ENV_LABEL.fullmatch(label):
        raise PlanError(f"{spec!r}: the environment label after '@' must be letters, digits, '_', '.' or '-' "
                        f"(e.g. torch@2.12), got {label!r}")


def validate_pythons(pythons: Mapping[str, str]) -> None:
    """``--python FRAMEWORK[@LABEL]=PATH``: a framework (not a variant: every variant of a framework
    runs in its environment), an optional plain label, a path."""
    for key, path in pythons.items():
        name, at, label = key.partition("@")
        if ":" in key:
            raise PlanError(f"--python {key}={path}: name a framework or FRAMEWORK@LABEL, not a variant; every "
                            f"variant of a framework runs in that framework's environment (e.g. --python "
                            f"{key.split(':')[0]}={path})")
        if not name.strip():
            raise PlanError(f"--python {key}={path}: the framework is missing; write FRAMEWORK=PATH, e.g. "
                            "--python torch=/envs/torch/bin/python")
        if at:
            check_env_label(key, label)
        if not str(path).strip():
            raise PlanError(f"--python {key}=: the interpreter's path is missing; write FRAMEWORK=PATH, e.g. "
                            f"--python {key}=/envs/{name}/bin/python")


def validate_gpus(gpus: Sequence[str], parallel: bool, device: str) -> None:
    """``--gpus`` entries as ``CUDA_VISIBLE_DEVICES`` takes them, no repeats; ``--parallel-gpus``
    only for GPU cells (CPU cells share the CPUs they are timed on, so they run one at a time)."""
    seen = set()
    for entry in gpus:
        if not isinstance(entry, str) or not GPU_ENTRY.fullmatch(entry):
            raise PlanError(f"--gpus: {entry!r} is not a GPU as CUDA_VISIBLE_DEVICES names one; give indices as "
                            "nvidia-smi numbers them (--gpus 0,1) or UUIDs (GPU-8f3c...; see nvidia-smi -L)")
        if entry in seen:
            raise PlanError(f"--gpus lists {entry} twice; each GPU runs one cell at a time, so list it once")
        seen.add(entry)
    if parallel and device != "gpu":
        raise PlanError("--parallel-gpus runs GPU cells side by side, one per GPU; CPU cells always run one at a "
                        "time, because cells running together would share the CPUs they are timed on. Drop "
                        "--parallel-gpus, or add --device gpu")
    if gpus and device != "gpu":
        raise PlanError(f"--gpus {','.join(gpus)} places GPU cells, and this run's cells are on the {device}; "
                        "add --device gpu, or drop --gpus (CPU cells never see a GPU: CUDA_VISIBLE_DEVICES='')")


def validate_placement(gpus: Sequence[str], parallel: bool, threads: int, where: str) -> None:
    """``--parallel-gpus`` with the GPUs it will use (``where`` says where the list came from):
    it needs at least one, and each cell running at the same time gets its own ``--threads`` CPUs."""
    if not parallel:
        return
    if not gpus:
        raise PlanError(f"--parallel-gpus needs the GPUs to spread the cells over, and {where}; name them with "
                        "--gpus 0,1")
    cpus = available_cpus()
    if len(gpus) * threads > cpus:
        raise PlanError(f"--parallel-gpus runs up to {len(gpus)} GPU cells at once ({where}), each on its own "
                        f"--threads {threads} CPUs: {len(gpus) * threads} CPUs, but this process may use {cpus}; "
                        f"pass --threads {max(1, cpus // len(gpus))}, or fewer GPUs with --gpus")
