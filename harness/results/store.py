"""The results store: ``<results-dir>/<run-id>/`` holds ``manifest.json`` (the run) and
``results.jsonl`` (one record per finished cell, appended and fsynced as each cell ends, so a
crash or Ctrl-C loses nothing already measured) and ``logs/`` (each cell's output)."""

from __future__ import annotations

import fcntl
import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from zoo.checkpoints import atomic_write_bytes

from harness.results.jsonio import dumps
from harness.results.records import CellRecord, read_record_file, record_to_json

RESULTS_FILE = "results.jsonl"
#: ``zoo bench --repeats``: each worker process's own record, kept until the cell's merged record
#: is in ``results.jsonl`` (and after: it is the raw material of the merge).
REPEATS_FILE = "repeats.jsonl"
MANIFEST_FILE = "manifest.json"
LOCK_FILE = ".lock"
#: Where a torn last line of a results file goes before the next record is appended.
QUARANTINE_SUFFIX = ".torn"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
#: Free space a run needs before it starts: records are small, but each cell also writes its log.
MIN_FREE_BYTES = 1 << 20


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
    #: What the store repaired on the way (a torn tail quarantined), for the command to report.
    warnings: list[str] = field(default_factory=list, init=False)
    _lock_fd: int | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        check_run_id(self.run_id)
        self.dir = Path(self.root) / self.run_id
        try:
            (self.dir / "logs").mkdir(parents=True, exist_ok=True)
            probe = self.dir / ".write-probe"
            probe.write_bytes(b"x" * 4096)
            probe.unlink()
            stat = os.statvfs(self.dir)
        except OSError as exc:
            raise StoreError(
                f"cannot write results to {self.dir}: {exc.strerror or exc}; choose another place with "
                "--results-dir or free some space"
            ) from exc
        free = stat.f_bavail * stat.f_frsize
        if free < MIN_FREE_BYTES:
            raise StoreError(
                f"only {free // 1024} KiB free for results in {self.dir} (need at least "
                f"{MIN_FREE_BYTES // 1024} KiB); free some space or choose another place with --results-dir"
            )

    @classmethod
    def existing(cls, root: Path, run_id: str) -> "RunStore":
        """An earlier run's store, for ``--resume``."""
        check_run_id(run_id)
        if not (Path(root) / run_id / MANIFEST_FILE).exists():
            runs = sorted(p.parent.name for p in Path(root).glob(f"*/{MANIFEST_FILE}"))[-5:]
            hint = f" (recent runs: {', '.join(runs)})" if runs else ""
            raise StoreError(f"no run {run_id!r} in {root}{hint}; pass its id and the same --results-dir")
        return cls(root, run_id)

    def lock(self) -> None:
        """Become the run's only writer (an advisory ``flock`` on ``.lock``, released when this
        process exits, however it exits). Raises :class:`StoreError` when another process holds it."""
        if self._lock_fd is not None:
            return
        path = self.dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreError(
                f"run {self.run_id} in {self.root} is being written by another zoo bench (pid {holder}); "
                "wait for it to finish, or give this run another --run-id"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @property
    def results_path(self) -> Path:
        return self.dir / RESULTS_FILE

    @property
    def manifest_path(self) -> Path:
        return self.dir / MANIFEST_FILE

    def log_path(self, cell_key: str) -> Path:
        return self.dir / "logs" / f"{cell_key}.log"

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic_write_bytes(self.manifest_path, (dumps(manifest, indent=2, sort_keys=True) + "\n").encode())

    @property
    def repeats_path(self) -> Path:
        return self.dir / REPEATS_FILE

    def append(self, record: CellRecord) -> None:
        """Append one record as a single write on an O_APPEND descriptor, then fsync. A write
        that fails (disk full) is undone, so the file never ends in a torn line, and raises
        :class:`StoreError`."""
        self._append(self.results_path, record)

    def append_repeat(self, record: CellRecord) -> None:
        """Keep the record of one repeat of a cell (``--repeats``), the same way."""
        self._append(self.repeats_path, record)

    def repair_tail(self, path: Path) -> None:
        """A file whose last line is torn (a crash mid-write) gets the fragment moved to
        ``FILE.torn`` and is cut back to its last whole line, so the next record is not glued
        onto the fragment; :attr:`warnings` says so."""
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return
        if size == 0:
            return
        with open(path, "rb+") as fh:
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return
            tail_start = max(0, size - (1 << 20))
            fh.seek(tail_start)
            chunk = fh.read()
            cut = chunk.rfind(b"\n")
            keep = tail_start + cut + 1 if cut >= 0 else 0
            fh.seek(keep)
            fragment = fh.read()
            with open(path.with_name(path.name + QUARANTINE_SUFFIX), "ab") as quarantine:
                quarantine.write(fragment + b"\n")
                quarantine.flush()
                os.fsync(quarantine.fileno())
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())
        self.warnings.append(
            f"{path.name} ended in a torn line ({len(fragment)} bytes, from a crash mid-write); it was moved to "
            f"{path.name}{QUARANTINE_SUFFIX} before appending")

    def _append(self, path: Path, record: CellRecord) -> None:
        self.repair_tail(path)
        line = (record_to_json(record) + "\n").encode()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot open {path}: {exc.strerror or exc}") from exc
        try:
            size = os.fstat(fd).st_size
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(28, "No space left on device (short write)")
            os.fsync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass
            raise StoreError(
                f"could not save the record of cell {record.cell.key} to {path}: "
                f"{exc.strerror or exc}; free some space, then `zoo bench --resume {self.run_id}` "
                "re-runs the cells that are missing"
            ) from exc
        finally:
            os.close(fd)

    def latest_records(self) -> dict[str, CellRecord]:
        """The last record of each cell key: a re-run (``--resume``) supersedes a failed one."""
        return {r.cell.key: r for r in self.records()}

    def records(self) -> list[CellRecord]:
        return list(read_records(self.results_path))


def read_records(path: Path) -> Iterator[CellRecord]:
    """Records of a results file, each checked (:func:`harness.results.records.read_record_file`:
    a corrupt line is an error naming the file and line; a torn last line is skipped)."""
    return read_record_file(path)


def disturbed_cells(run_dir: Path) -> dict[str, list[str]]:
    """Cell key -> why, for the cells of a run whose latest record says another process disturbed
    it (``environment.disturbance``, see :mod:`harness.measure.contention`)."""
    out: dict[str, list[str]] = {}
    for record in read_records(Path(run_dir) / RESULTS_FILE):
        verdict = record.environment.get("disturbance") or {}
        if verdict.get("disturbed"):
            out[record.cell.key] = list(verdict.get("reasons", []))
        else:
            out.pop(record.cell.key, None)  # a later record of the cell (a resume) counts
    return out
