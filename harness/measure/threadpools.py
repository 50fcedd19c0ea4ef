"""The thread pools a cell really ran with, beside the ones it was given.

The host sets ``OMP_NUM_THREADS``/``MKL_NUM_THREADS``/``OPENBLAS_NUM_THREADS`` and each adapter
sizes its framework's own pools, but a library can ignore an environment variable, or a second
copy of OpenMP or BLAS can arrive with a framework and start its own pool. threadpoolctl lists
every BLAS and OpenMP pool loaded in the process; a pool whose size is not the cell's
``--threads`` fails the cell's fairness check (the comparison with a neighbour would not be one
of equals), and the record says which library it was."""

from __future__ import annotations

from typing import Any


def thread_pools() -> list[dict[str, Any]]:
    """Every BLAS/OpenMP pool loaded in this process: library, API and size (``[]`` without
    threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [{"library": p.get("internal_api", ""), "api": p.get("user_api", ""), "prefix": p.get("prefix", ""),
             "num_threads": p.get("num_threads"), "version": p.get("version")} for p in threadpool_info()]


def fairness(pools: list[dict[str, Any]], threads: int) -> dict[str, Any]:
    """The verdict: every pool sized to ``threads``, or which are not."""
    wrong = [f"{p['prefix'] or p['library']} ({p['api']}) runs {p['num_threads']} threads, not the {threads} "
             f"the cell was given" for p in pools if p.get("num_threads") not in (None, threads)]
    return {"requested": threads, "pools": pools, "ok": not wrong, "mismatches": wrong}
