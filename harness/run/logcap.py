"""A worker's output, copied into its log file with a size cap.

A plugin that prints in a loop must not fill the disk and stop the run: the first half of the
cap is kept as it came, then only the most recent output (the end holds the error a failing
cell prints), and the log says how much was left out in between."""

from __future__ import annotations

import collections
import os
import threading
from pathlib import Path
from typing import BinaryIO

#: Default cap of one cell's log file; ``ZOO_LOG_LIMIT_BYTES`` overrides it.
DEFAULT_LIMIT = 16 << 20
LIMIT_ENV = "ZOO_LOG_LIMIT_BYTES"
_CHUNK = 1 << 16


def log_limit() -> int:
    value = os.environ.get(LIMIT_ENV, "")
    return int(value) if value.isdigit() and int(value) >= 4096 else DEFAULT_LIMIT


class CappedLog:
    """Reads a pipe in a thread and writes at most ``limit`` bytes of it (plus a note) to ``path``."""

    def __init__(self, path: Path, limit: int | None = None):
        """Open ``path`` now (before the worker starts: a full disk fails here, with nothing
        running); :meth:`attach` the worker's pipe once it runs."""
        self.path = path
        self.limit = limit or log_limit()
        self.head_left = self.limit // 2
        self.tail: collections.deque[bytes] = collections.deque()
        self.tail_bytes = 0
        self.dropped = 0
        self.file = open(path, "wb")
        self.pipe: BinaryIO | None = None
        self.thread: threading.Thread | None = None

    def attach(self, pipe: BinaryIO) -> None:
        self.pipe = pipe
        self.thread = threading.Thread(target=self._copy, daemon=True, name=f"log {self.path.name}")
        self.thread.start()

    def _copy(self) -> None:
        while True:
            try:
                chunk = os.read(self.pipe.fileno(), _CHUNK)
            except OSError:
                break
            if not chunk:
                break
            if self.head_left > 0:
                head, chunk = chunk[: self.head_left], chunk[self.head_left:]
                self.file.write(head)
                self.file.flush()
                self.head_left -= len(head)
            if chunk:
                self.tail.append(chunk)
                self.tail_bytes += len(chunk)
                keep = self.limit // 2
                while self.tail_bytes > keep:  # drop whole chunks, then the front of the first
                    excess = self.tail_bytes - keep
                    first = self.tail[0]
                    if len(first) <= excess:
                        self.tail.popleft()
                        cut = len(first)
                    else:
                        self.tail[0] = first[excess:]
                        cut = excess
                    self.tail_bytes -= cut
                    self.dropped += cut

    def close(self, timeout: float = 5.0) -> None:
        """Wait for the pipe to end (all writers gone), then write the kept tail and close."""
        if self.thread is not None:
            self.thread.join(timeout)
        if self.dropped:
            self.file.write(f"\n[zoo: {self.dropped} bytes of this cell's output left out here: its log is capped "
                            f"at {self.limit} bytes ({LIMIT_ENV})]\n".encode())
        for chunk in self.tail:
            self.file.write(chunk)
        self.tail.clear()
        self.file.close()
        try:
            if self.pipe is not None:
                self.pipe.close()
        except OSError:
            pass
