"""The results store: ``<results-dir>/<run-id>/`` holds ``manifest.json`` (the run) and
``results.jsonl`` (one record per finished cell, appended and fsynced as each cell ends, so a
crash or Ctrl-C loses nothing already measured) and ``logs/`` (each cell's output)."""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from zoo.checkpoints import atomic_write_bytes

from harness.records import CellRecord, record_from_dict, record_to_json

RESULTS_FILE = "results.jsonl"
MANIFEST_FILE = "manifest.json"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class StoreError(RuntimeError):
    """The results directory cannot be used."""


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


def check_run_id(run_id: str) -> str:
    if not _RUN_ID.match(run_id) or ".." in run_id:
        raise StoreError(
            f"invalid run id {run_id!r}: use letters, digits, '.', '_' and '-' (at most 100), "
            "so the run stays inside the results directory"
        )
    return run_id


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class RunStore:
    """One run's directory. Creating it checks that it is writable before anything is measured."""

    root: Path
    run_id: str

    def __post_init__(self) -> None:
        check_run_id(self.run_id)
        self.dir = Path(self.root) / self.run_id
        try:
            (self.dir / "logs").mkdir(parents=True, exist_ok=True)
            probe = self.dir / ".write-probe"
            probe.write_bytes(b"x" * 4096)
            probe.unlink()
        except OSError as exc:
            raise StoreError(
                f"cannot write results to {self.dir}: {exc.strerror or exc}; choose another place with "
                "--results-dir or free some space"
            ) from exc

    @property
    def results_path(self) -> Path:
        return self.dir / RESULTS_FILE

    @property
    def manifest_path(self) -> Path:
        return self.dir / MANIFEST_FILE

    def log_path(self, cell_key: str) -> Path:
        return self.dir / "logs" / f"{cell_key}.log"

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic_write_bytes(self.manifest_path, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())

    def read_manifest(self) -> dict[str, Any]:
        return json.loads(self.manifest_path.read_text())

    def append(self, record: CellRecord) -> None:
        """Append one record as a single write on an O_APPEND descriptor, then fsync."""
        line = (record_to_json(record) + "\n").encode()
        fd = os.open(self.results_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def records(self) -> list[CellRecord]:
        return list(read_records(self.results_path))


def read_records(path: Path) -> Iterator[CellRecord]:
    """Records of a results file; a torn last line (a crash mid-write) is skipped."""
    if not path.exists():
        return
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                continue
            raise
        yield record_from_dict(data)
