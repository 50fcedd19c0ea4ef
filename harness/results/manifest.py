"""A run's ``manifest.json``: what was asked, by which harness, on which machine, with which
plugins, and how the run ended. Written before the first cell and rewritten as the run goes."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import zoo

from harness.measure import machine
from harness.plan.request import BenchRequest
from harness.results.records import CorruptFileError, SchemaError
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


class ManifestError(CorruptFileError):
    """A run's ``manifest.json`` is missing, empty, not UTF-8, not JSON, not an object, or lacks
    a field its reader needs; the message names the file (and line) and what is wrong."""


def migrate_manifest(data: Mapping[str, Any], path: Path | str) -> dict[str, Any]:
    """Manifests have their own version (``schema_version``, 1 today); a newer one is refused."""
    version = data.get("schema_version", 1)
    if type(version) is not int or version > MANIFEST_SCHEMA_VERSION:
        raise SchemaError(f"{path}: run manifest has schema version {version!r}, newer than this zoo-bench reads "
                          f"({MANIFEST_SCHEMA_VERSION}); upgrade zoo-bench to read it")
    return dict(data)


def read_manifest(path: Path) -> dict[str, Any]:
    """A run's manifest, checked: :class:`ManifestError` when it is missing, empty, not UTF-8,
    not JSON or not a JSON object (naming the file, and the line where it can), and
    :class:`~harness.results.records.SchemaError` when a newer zoo-bench wrote it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError(f"{path}: the run has no manifest (the file is missing), so what was run and on which "
                            "machine is unknown") from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the run manifest: {exc.strerror or exc}") from None
    if not data.strip():
        raise ManifestError(f"{path}: the run manifest is empty ({len(data)} bytes): it was never written or was "
                            "truncated, so what was run and on which machine is unknown")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ManifestError(f"{path}:{line}: the run manifest is not UTF-8 text (byte {exc.start + 1} is "
                            f"{data[exc.start:exc.start + 1]!r}); the file is corrupt") from None
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}:{exc.lineno}: the run manifest is not JSON ({exc.msg} at column {exc.colno}); the file is corrupt") from None
    if not isinstance(manifest, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(manifest), "a number")
        raise ManifestError(f"{path}: the run manifest is {kind}, not a JSON object; the file is corrupt")
    return migrate_manifest(manifest, path)


def manifest_field(manifest: Mapping[str, Any], dotted: str, kind: type | tuple[type, ...], path: Path | str) -> Any:
    """``manifest["a"]["b"]`` for ``dotted="a.b"``, checked to be a ``kind``; :class:`ManifestError`
    naming the field when it is missing or of another type."""
    value: Any = manifest
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise ManifestError(f"{path}: the run manifest has no field {dotted!r}; it is incomplete or corrupt")
        value = value[part]
    if not isinstance(value, kind) or isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ManifestError(f"{path}: the run manifest's field {dotted!r} is {type(value).__name__} "
                            f"{str(value)[:40]!r}, not {getattr(kind, '__name__', kind)}; it is corrupt")
    return value
