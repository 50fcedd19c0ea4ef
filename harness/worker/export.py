"""``zoo pretrain``: save a cell's fine-tuned weights as a zoo checkpoint with a model card.

Not part of a benchmark: only a plan with an :class:`~harness.plan.cells.ExportSpec` gets here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from zoo.checkpoints import save_checkpoint
from zoo.contract import FrameworkInfo
from zoo.models.spec import ModelSpec
from zoo.tasks.task import Task

from harness.plan.cells import CellPlan


def save_pretrained(plan: CellPlan, spec: ModelSpec, task: Task, weights: Mapping[str, np.ndarray],
                    accuracy: float, info: FrameworkInfo) -> None:
    """Write ``weights`` as checkpoint ``plan.export.name`` with its manifest entry and card."""
    assert plan.export is not None
    cell, settings, export = plan.cell, plan.settings, plan.export
    command = f"zoo pretrain --model {spec.name} --task {task.name} --framework {cell.framework}"
    if settings.epochs != task.recipe.epochs:
        command += f" --epochs {settings.epochs}"
    if settings.seed != 0:
        command += f" --seed {settings.seed}"
    # What zoo-bench knows of the checkpoint; fields the user gave (--card) win.
    card: dict[str, Any] = {
        "summary": f"{spec.description}; trained from a seeded NumPy initialisation on {task.name} by zoo pretrain",
        "source_data": task.description,
        "recipe": f"{settings.epochs} epochs of Adam (lr {settings.learning_rate:g}, batch {cell.batch_size}, "
                  f"softmax cross-entropy), all parameters trained, in {cell.framework}; reproduce with `{command}`",
        "accuracy": f"{100 * accuracy:.2f}% on the {task.name} test images, measured by zoo-bench",
        **(json.loads(export.card) if export.card else {}),
    }
    save_checkpoint(
        {
            "name": export.name,
            "model": spec.name,
            "source_task": task.name,
            "num_classes": task.num_classes,
            "input_shape": list(task.input_shape),
            "accuracy": round(accuracy, 4),
            "recipe": {"epochs": settings.epochs, "batch_size": cell.batch_size,
                       "learning_rate": settings.learning_rate, "optimizer": "adam",
                       "init": "zoo.init.init_weights", "seed": settings.seed, "freeze": cell.freeze},
            "produced_by": {"framework": cell.framework, "versions": dict(info.versions)},
            "command": command,
            "card": card,
        },
        weights,
        Path(export.directory),
    )
