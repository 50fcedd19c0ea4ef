"""The Ray executor: each cell one Ray task that runs the unchanged worker on a node of a cluster.

``zoo bench --executor ray [--ray-address auto|HOST:PORT]``. The task runs
:func:`harness.run.executors.local.run_cell` on the node, so the worker is the same process as a
local run's (own session, timeout enforced there, failed/timeout records for a dead worker), and
it stamps the node's machine fingerprint and volatile information on its own record. The record
and the cell's log come back to the store and manifest of the run, as a local run's do.

Fairness: by default one cell per node at a time. Start each node with the custom resource
``zoo_bench_node`` (``ray start ... --resources='{"zoo_bench_node": 1}'``) and every cell asks
for one, so cells never share a node's cores; GPU cells also ask for one GPU. Give a node more of
the resource (or pass ``--executor-option cells_per_node=0`` to ask only for the cell's CPUs) to
run several cells at once, knowing they then share the machine they are timed on. A cluster
without the resource is refused with this explanation rather than silently sharing nodes.
``--executor-option resources='{"h200": 1}'`` adds custom resources (or node labels as
resources) so that the cells of one comparison land on one machine type.

Faults: a worker that dies gives a failed record (as locally); a Ray worker or node that dies
gives the cell a failed record naming the Ray error, and the other cells continue. Ctrl-C
cancels the pending and running tasks (``ray.cancel(force=True)``; the worker dies with its
parent) and keeps every finished record.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from harness.plan.cells import CellPlan
from harness.results.records import CellRecord, ErrorInfo, record_from_dict, record_to_dict
from harness.results.store import utc_now
from harness.run.executors.base import CellJob, Executor, ExecutorError, with_disturbance

NODE_RESOURCE = "zoo_bench_node"
INSTALL_HINT = "install it with: pip install 'zoo-bench[ray]'"
LOG_LIMIT = 4 << 20  # bytes of a cell's log sent back from the node


def _ray():
    try:
        import ray
    except ImportError:
        raise ExecutorError(f"--executor ray needs the ray package, which is not installed; {INSTALL_HINT}") from None
    return ray


def _cell_on_node(plan_data: dict, timeout_s: float, peak_after: bool) -> tuple[dict, str, float]:
    """Runs on a Ray node: the worker in a fresh process, then (CPU cells) the peak probe."""
    from harness.measure import peak
    from harness.run.executors.local import run_cell

    plan = CellPlan.from_dict(plan_data)
    with tempfile.TemporaryDirectory(prefix="zoo-cell-") as tmp:
        log = Path(tmp) / "cell.log"
        record = run_cell(plan, Path(tmp), log, timeout_s)
        text = log.read_bytes()[-LOG_LIMIT:].decode(errors="replace") if log.exists() else ""
    after = 0.0
    if peak_after and plan.cell.device == "cpu" and plan.settings.peak_gflops:
        after = peak.measure(plan.cell.device, plan.cell.precision, plan.settings.threads).gflops
    return record_to_dict(record), text, after


def _peaks_on_node(pairs: list[tuple[str, str]], threads: int) -> dict[str, dict]:
    from harness.measure import peak

    return {f"{d}/{p}": asdict(peak.measure(d, p, threads)) for d, p in pairs}


def _reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast for a HOST:PORT nobody listens on (ray.init would retry for minutes)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or address.startswith(("ray://", "auto")):
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ExecutorError(f"cannot reach a Ray cluster at {address!r}: {exc.strerror or exc}; start one with "
                            f"`ray start --head --resources='{{\"{NODE_RESOURCE}\": 1}}'` and pass --ray-address "
                            "HOST:PORT") from None


class RayExecutor(Executor):
    """Cells as Ray tasks on a cluster (see the module docstring)."""

    name = "ray"
    description = "each cell a Ray task on a cluster node, one cell per node (--ray-address)"

    def __init__(self, options):
        super().__init__(options)
        self._ray = None
        self._running: list[Any] = []

    # --- connection and resources

    def _connect(self):
        if self._ray is not None:
            return self._ray
        ray = _ray()
        address = self.options.settings.get("address") or os.environ.get("RAY_ADDRESS") or "auto"
        if not ray.is_initialized():
            _reachable(address)
            try:
                # the nodes' own environment (what `ray start` had) runs the cells, as on a real cluster
                ray.init(address=address, log_to_driver=False, ignore_reinit_error=True)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ExecutorError(f"cannot reach a Ray cluster at {address!r}: {exc}; start one with `ray start "
                                   f"--head --resources='{{\"{NODE_RESOURCE}\": 1}}'` and pass --ray-address "
                                   "HOST:PORT") from None
        if self._per_node() and NODE_RESOURCE not in ray.cluster_resources():
            raise ExecutorError(
                f"the Ray cluster has no {NODE_RESOURCE!r} resource, so cells could share a node's cores while "
                f"they are timed; start each node with --resources='{{\"{NODE_RESOURCE}\": 1}}' (one cell per node), "
                "or pass --executor-option cells_per_node=0 to share nodes knowingly")
        self._ray = ray
        return ray

    def _per_node(self) -> bool:
        return self.options.settings.get("cells_per_node", "1") != "0"

    def _resources(self, plan: CellPlan) -> dict[str, Any]:
        extra = json.loads(self.options.settings.get("resources", "{}") or "{}")
        resources = {**({NODE_RESOURCE: 1} if self._per_node() else {}), **extra}
        return {"num_cpus": plan.settings.threads, "num_gpus": 1 if plan.cell.device == "gpu" else 0,
                "resources": resources, "max_retries": 0}

    # --- the executor protocol

    def open(self) -> None:
        self._connect()

    def submit(self, jobs: Sequence[CellJob],
               on_start: Callable[[CellJob], None] | None = None) -> Iterator[tuple[CellJob, CellRecord]]:
        ray = self._connect()
        remote = ray.remote(_cell_on_node)
        pending = {}
        for job in jobs:
            ref = remote.options(**self._resources(job.plan)).remote(job.plan.to_dict(), self.options.timeout_s,
                                                                     True)
            pending[ref] = (job, utc_now(), time.perf_counter())
            if on_start is not None:
                on_start(job)
        self._running = list(pending)
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                ref = done[0]
                job, started, t0 = pending.pop(ref)
                self._running = list(pending)
                yield job, self._collect(ray, ref, job, started, time.perf_counter() - t0)
        finally:
            self.cancel()

    def _collect(self, ray, ref, job: CellJob, started: str, duration: float) -> CellRecord:
        try:
            data, log, peak_after = ray.get(ref)
        except Exception as exc:  # a Ray worker or node died, or the task was cancelled
            job.log_path.write_text(f"ray task failed: {type(exc).__name__}: {exc}\n")
            return CellRecord(run_id=job.plan.run_id, cell=job.plan.cell, status="failed",
                              error=ErrorInfo("worker", type(exc).__name__,
                                              f"the Ray task of this cell died ({type(exc).__name__}): "
                                              f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}", str(exc)[-4000:]),
                              started_at=started, duration_s=duration,
                              environment={"peak_gflops": job.plan.settings.peak_gflops})
        job.log_path.write_text(log)
        return with_disturbance(record_from_dict(data), peak_after)

    def measure_peaks(self, pairs: Sequence[tuple[str, str]], threads: int) -> dict[str, dict]:
        ray = self._connect()
        needs = {"num_cpus": threads, "resources": {NODE_RESOURCE: 1} if self._per_node() else {}}
        return ray.get(ray.remote(_peaks_on_node).options(**needs).remote(list(pairs), threads))

    def cancel(self) -> None:
        if self._ray is None:
            return
        for ref in self._running:
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished or gone
                pass
        self._running = []

    def close(self) -> None:
        if self._ray is not None and self._ray.is_initialized():
            self._ray.shutdown()
        self._ray = None
