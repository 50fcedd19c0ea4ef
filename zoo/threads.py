"""The generic thread-pool environment every worker process gets, whatever its framework.

One definition for the host (each cell's worker, the peak probe) and the conformance kit, so a
framework is never measured with pools sized differently from its neighbours'. Framework-specific
variables (``TF_NUM_INTRAOP_THREADS``, ``PJRT_NPROC``, ...) come from each adapter's
:meth:`zoo.contract.Framework.subprocess_env`.
"""

from __future__ import annotations

#: Variables read by OpenMP, MKL and OpenBLAS when a process starts its thread pools.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def thread_env(threads: int) -> dict[str, str]:
    """``{"OMP_NUM_THREADS": "N", ...}`` for ``threads`` intra-op threads (at least 1)."""
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    return {name: str(threads) for name in THREAD_VARIABLES}
