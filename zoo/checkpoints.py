"""Canonical checkpoints: safetensors files plus a manifest that records each file's sha256.

A checkpoint's bytes are hashed and compared with the manifest *before* they are parsed, so a
corrupt or swapped file is refused before any framework sees it. Only safetensors is read: no
pickle, from any source.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import numpy as np

#: A checkpoint name: it becomes ``NAME.safetensors`` inside its directory, so nothing that could
#: leave it (``/``, ``..``, a leading dot) and at most 100 characters.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}")


def check_checkpoint_name(name: str) -> str:
    """``name`` if it is a valid checkpoint name, else :class:`CheckpointError` saying what is."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise CheckpointError(
            f"invalid checkpoint name {name!r}: use letters, digits, '.', '_', '+' and '-' (at most 100, starting "
            "with a letter or digit), e.g. resnet18-imagenet; the name becomes a file inside the checkpoint directory")
    return name


#: Where the checkpoints shipped with zoo-bench live.
BUILTIN_DIR = Path(__file__).parent / "pretrained"


def user_checkpoint_dir() -> Path:
    """Where ``zoo import`` and ``zoo fetch`` write checkpoints by default:
    ``$ZOO_CACHE_DIR/checkpoints`` (``~/.cache/zoo-bench/checkpoints``)."""
    from zoo.download import cache_dir

    return cache_dir() / "checkpoints"
MANIFEST = "manifest.json"
MANIFEST_SCHEMA = 1


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or does not fit its model."""


@dataclass(frozen=True)
class CheckpointEntry:
    """One manifest entry: what a checkpoint is, where it came from, how good it is."""

    name: str
    model: str
    file: str
    sha256: str
    source_task: str
    num_classes: int
    input_shape: tuple[int, int, int]
    accuracy: float | None  # test accuracy on the source task; None when not measured (imports)
    recipe: Mapping[str, Any] = field(default_factory=dict)
    produced_by: Mapping[str, Any] = field(default_factory=dict)
    command: str = ""
    #: The model card: free-form but with these keys where known: ``summary``, ``source_data``
    #: (what it was trained on), ``recipe`` (how, in words), ``accuracy`` (with where the number
    #: comes from: measured by zoo-bench or published by the source), ``license``, ``url``,
    #: ``source_sha256`` (of the file it was imported from), ``citation``.
    card: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CheckpointEntry":
        """Read one manifest entry; keys this version does not know are ignored, so an older
        zoo-bench still reads a manifest that a newer one wrote with additional fields."""
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["input_shape"] = tuple(data["input_shape"])
        return cls(**data)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(directory: Path = BUILTIN_DIR) -> dict[str, CheckpointEntry]:
    path = directory / MANIFEST
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    if data.get("schema", 0) > MANIFEST_SCHEMA:
        raise CheckpointError(
            f"{path} has manifest schema {data['schema']}, newer than this zoo-bench understands "
            f"({MANIFEST_SCHEMA}); upgrade zoo-bench"
        )
    return {e["name"]: CheckpointEntry.from_dict(e) for e in data.get("checkpoints", [])}


def write_manifest(entries: Mapping[str, CheckpointEntry], directory: Path = BUILTIN_DIR) -> None:
    body = {
        "schema": MANIFEST_SCHEMA,
        "checkpoints": [asdict(entries[name]) for name in sorted(entries)],
    }
    atomic_write_bytes(directory / MANIFEST, (json.dumps(body, indent=2) + "\n").encode())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; results and checkpoints are meant to be shared
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def search_path(extra: str | Path | None = None) -> list[Path]:
    """Where checkpoints are looked up, first match wins: ``extra`` (``--checkpoint-dir``), the
    user directory (``zoo import``/``zoo fetch``), then the ones shipped with zoo-bench."""
    dirs = [Path(extra)] if extra else []
    return dirs + [user_checkpoint_dir(), BUILTIN_DIR]


def locate_checkpoint(name: str, directories: list[Path]) -> tuple[CheckpointEntry, Path]:
    """The manifest entry of ``name`` and the directory holding it (manifests only; no weights
    are read)."""
    known: set[str] = set()
    for directory in directories:
        entries = read_manifest(directory)
        if name in entries:
            return entries[name], directory
        known |= set(entries)
    raise CheckpointError(
        f"no checkpoint {name!r} in {', '.join(str(d) for d in directories)} (known: {', '.join(sorted(known)) or 'none'}); "
        "create one with `zoo import`, `zoo fetch` or `zoo pretrain`"
    )


def load_checkpoint(name: str, directory: Path = BUILTIN_DIR) -> tuple[CheckpointEntry, dict[str, np.ndarray]]:
    """Verify ``name``'s sha256 against the manifest, then read its canonical weights."""
    from safetensors.numpy import load as load_safetensors

    entries = read_manifest(directory)
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none"
        raise CheckpointError(f"no checkpoint {name!r} in {directory / MANIFEST} (known: {known})")
    entry = entries[name]
    path = directory / entry.file
    if Path(entry.file).name != entry.file or entry.file.startswith("."):
        raise CheckpointError(f"the manifest in {directory} gives checkpoint {name!r} the file {entry.file!r}, which "
                              "is not a plain file name in that directory; the manifest was edited or is corrupt")
    if not path.exists():
        raise CheckpointError(f"checkpoint file {path} is missing; reinstall zoo-bench or run `zoo pretrain`")
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != entry.sha256:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or was replaced: sha256 {actual[:16]}..., manifest says "
            f"{entry.sha256[:16]}...; restore the file (git checkout / reinstall) or re-run `zoo pretrain`"
        )
    try:
        weights = load_safetensors(data)
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"checkpoint {path} is not a readable safetensors file: {exc}") from exc
    return entry, {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}


def save_checkpoint(
    entry_fields: Mapping[str, Any], weights: Mapping[str, np.ndarray], directory: Path = BUILTIN_DIR
) -> CheckpointEntry:
    """Write ``weights`` as ``<name>.safetensors`` and record it (with its sha256) in the manifest."""
    from safetensors.numpy import save as save_safetensors

    name = check_checkpoint_name(entry_fields["name"])
    file = f"{name}.safetensors"
    blob = save_safetensors(
        {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sorted(weights.items())},
        metadata={"model": str(entry_fields["model"]), "layout": "zoo-canonical-v1"},
    )
    atomic_write_bytes(directory / file, blob)
    entry = CheckpointEntry.from_dict(
        {**entry_fields, "file": file, "sha256": hashlib.sha256(blob).hexdigest()}
    )
    entries = read_manifest(directory)
    entries[name] = entry
    write_manifest(entries, directory)
    return entry
