"""The order in which a run's worker processes run, and when a cell's record is final.

With ``--repeats R`` a run goes in R rounds: round r runs every cell's r-th worker process, so a
cell's processes are spread over the whole run and a slow spell of the machine hits one repeat
of several cells rather than every repeat of one (see :mod:`harness.results.repeats`). A cell
that failed in a round gets no further rounds; its failed record is final.
"""

from __future__ import annotations

from typing import Sequence

from harness.plan.planner import PlannedCell
from harness.results.records import CellRecord


def round_cells(planned: Sequence[PlannedCell], r: int, runs: dict[str, list[CellRecord]]) -> list[PlannedCell]:
    """The cells that run in round ``r`` (0-based): all runnable cells in round 0; later, those
    whose previous rounds were all ok."""
    if r == 0:
        return [p for p in planned if p.plan is not None]
    return [p for p in planned if p.plan is not None and runs[p.cell.key]
            and runs[p.cell.key][-1].status == "ok" and len(runs[p.cell.key]) == r]


def is_final(record: CellRecord, r: int, repeats: int) -> bool:
    """Whether round ``r``'s record ends the cell: its last round, or a failure."""
    return r == repeats - 1 or record.status != "ok"
