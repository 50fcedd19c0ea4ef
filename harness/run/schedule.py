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
    """The cells that run in round ``r`` (0-based): those with exactly ``r`` repeats so far, all
    of them ok (a resumed cell that kept ``k`` finished repeats joins at round ``k``)."""
    return [p for p in planned if p.plan is not None and len(runs[p.cell.key]) == r
            and all(rec.status == "ok" for rec in runs[p.cell.key])]


def is_final(record: CellRecord, r: int, repeats: int) -> bool:
    """Whether round ``r``'s record ends the cell: its last round, or a failure."""
    return r == repeats - 1 or record.status != "ok"
