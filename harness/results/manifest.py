"""A run's ``manifest.json``: what was asked, by which harness, on which machine, with which
plugins, and how the run ended. Written before the first cell and rewritten as the run goes."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import zoo

from harness.measure import machine
from harness.plan.request import BenchRequest
from harness.results.store import utc_now

if TYPE_CHECKING:
    from zoo.plugin_host import PluginHost

MANIFEST_SCHEMA_VERSION = 1


def new_manifest(request: BenchRequest, cell_keys: Sequence[str], host: "PluginHost", run_id: str) -> dict[str, Any]:
    """The manifest of a run that is about to start (status ``running``)."""
    stable = machine.stable_info()
    return {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "run_id": run_id,
        "trigger": request.trigger,
        "started_at": utc_now(),
        "status": "running",
        "harness": {"zoo_bench": zoo.__version__, "contract_version": zoo.CONTRACT_VERSION, **machine.harness_commit()},
        "machine": {"fingerprint": machine.fingerprint(stable), "stable": stable, "volatile": machine.volatile_info()},
        "request": request_to_dict(request),
        "cells": list(cell_keys),
        "plugins": {name: asdict(origin) for name, origin in host.origins.items()},
    }


def request_to_dict(request: BenchRequest) -> dict[str, Any]:
    """The request as the manifest keeps it (paths as text)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(request).items()}


def request_from_dict(fields: dict[str, Any], results_dir: Path, run_id: str) -> BenchRequest:
    """A manifest's request as a :class:`BenchRequest` (fields a newer harness added are ignored)."""
    fields = {**fields, "results_dir": Path(results_dir), "run_id": run_id}
    known = set(BenchRequest.__dataclass_fields__)
    return BenchRequest(**{k: v for k, v in fields.items() if k in known})
