"""What ``zoo bench`` was asked to do, before any name is resolved."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

DEFAULT_TASK = "digits"
DEFAULT_MODELS = ("mlp", "cnn")


class PlanError(ValueError):
    """The request cannot be run as given; the message says how to fix it."""


@dataclass(frozen=True)
class BenchRequest:
    """What ``zoo bench`` was asked to do. ``None`` means "the task's recipe decides"."""

    frameworks: Sequence[str] = ()  # empty = every installed framework
    models: Sequence[str] = DEFAULT_MODELS
    tasks: Sequence[str] = (DEFAULT_TASK,)
    device: str = "cpu"
    precisions: Sequence[str] = ("fp32",)
    feeds: Sequence[str] = ("device",)  # ``--feed``: zoo.contract.FEEDS; one cell per feed
    batch_size: int | None = None
    epochs: int | None = None
    learning_rate: float | None = None
    freeze: str | None = None
    init: str = "pretrained"
    threads: int = field(default_factory=lambda: len(os.sched_getaffinity(0)))
    seed: int = 0
    windows: int = 5
    window_steps: int = 0
    warmup_cap: int = 50
    repeats: int = 1  # worker processes per cell, merged into one record (harness.results.repeats)
    timeout_s: float = 900.0
    results_dir: Path = Path("results")
    run_id: str = ""
    checkpoint_dir: str = ""  # searched before the user's and the shipped checkpoints
    checkpoint: str = ""  # start every cell of its model from this checkpoint (else the task's)
    trigger: str = "manual"
    executor: str = "local"  # where cells run: harness.run.executors
    executor_options: Mapping[str, str] = field(default_factory=dict)  # e.g. {"address": "auto"} for ray
    only_cells: Sequence[str] = ()  # run only these cell keys of the matrix (zoo compare --confirm)
    retry_disturbed: int = 0  # runs again of a cell another process disturbed (harness.measure.contention)
    #: ``--python FRAMEWORK[@LABEL]=PATH``: the interpreter whose environment runs that framework's
    #: cells (empty: every cell runs under the ``zoo`` process's own interpreter).
    pythons: Mapping[str, str] = field(default_factory=dict)
    #: ``--gpus``: the GPUs GPU cells are pinned to, as ``CUDA_VISIBLE_DEVICES`` entries (indices or
    #: UUIDs); empty = what this process sees (its ``CUDA_VISIBLE_DEVICES``, else ``nvidia-smi -L``).
    gpus: Sequence[str] = ()
    parallel_gpus: bool = False  # ``--parallel-gpus``: up to one GPU cell per listed GPU at a time

