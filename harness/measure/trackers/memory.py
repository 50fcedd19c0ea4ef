"""Host memory of the worker process, as a tracker.

Today's definition, kept so records stay comparable: ``peak_rss_mb`` is the process's
high-water mark (``ru_maxrss``) at the end of the cell minus the high-water mark right after the
framework's ``prepare`` (``baseline_rss_mb``). Per-phase working sets are a separate tracker's job.
"""

from __future__ import annotations

import resource
from typing import Mapping

from zoo.trackers import Tracker, TrackerContext, Value


def maxrss_bytes() -> int:
    """This process's peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class HostMemoryTracker(Tracker):
    """Peak RSS of the worker over its post-``prepare`` baseline."""

    name = "host_memory"

    def __init__(self, context: TrackerContext):
        super().__init__(context)
        self.baseline = maxrss_bytes()  # made right after prepare(): the framework is imported

    def finish(self) -> Mapping[str, Value]:
        return {"peak_rss_mb": max(0, maxrss_bytes() - self.baseline) / 2**20,
                "baseline_rss_mb": self.baseline / 2**20}
