"""The plan of a ``zoo pretrain`` cell: train a model from the seeded NumPy initialisation on a
source task with one framework and save it as a zoo checkpoint (not a benchmark: nothing here
is measured for comparison)."""

from __future__ import annotations

from pathlib import Path

from zoo.contract import Framework, Runtime
from zoo.threads import thread_env

from harness.plan.cells import Cell, CellPlan, ExportSpec, Settings
from harness.plan.placement import cell_env
from harness.plugins.registry import Provided
from harness.results.store import new_run_id


def pretrain_plan(framework: Provided[Framework], model: Provided, task: Provided, out: Path, name: str,
                  epochs: int | None, seed: int, threads: int, card: str = "") -> CellPlan:
    """A scratch-initialised, fully trained fp32 CPU cell whose weights are exported to ``out``."""
    recipe = task.item.recipe
    runtime = Runtime("cpu", "fp32", threads, seed)
    return CellPlan(
        run_id=new_run_id(),
        cell=Cell(framework.item.name, model.item.name, task.item.name, "cpu", "fp32", recipe.batch_size, "none",
                  "scratch"),
        settings=Settings(epochs=epochs or recipe.epochs, learning_rate=recipe.learning_rate, threads=threads,
                          seed=seed),
        modules=tuple(dict.fromkeys([framework.origin.module, model.origin.module, task.origin.module])),
        env={**thread_env(threads), **framework.item.subprocess_env(runtime), **cell_env("cpu")},
        export=ExportSpec(directory=str(out.resolve()), name=name, card=card),
    )
