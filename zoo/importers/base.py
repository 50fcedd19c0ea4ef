"""What every importer shares: the record of imported weights, the error, and file helpers.

The importer modules import this one, never the package (whose ``__init__`` dispatches to them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from zoo.checkpoints import sha256_of


class WeightsImportError(ValueError):
    """A weights file cannot be imported: unreadable, or not the topology it claims or is asked for."""


@dataclass(frozen=True)
class ImportedWeights:
    """Canonical weights read from a published file, and where they came from."""

    model: str  # zoo model name, e.g. "resnet50"
    weights: dict[str, np.ndarray]
    num_classes: int
    input_channels: int
    source: str  # "torchvision" | "keras" | "hf"
    source_file: str
    source_sha256: str
    source_format: str  # e.g. "torch state_dict", "keras3 .weights.h5", "safetensors (timm naming)"
    notes: tuple[str, ...] = ()
    dropped: tuple[str, ...] = field(default=())  # source keys deliberately not imported

    def metadata(self) -> dict[str, Any]:
        """A small JSON-able record for manifests and model cards."""
        return {
            "source": self.source, "source_file": Path(self.source_file).name, "source_sha256": self.source_sha256,
            "source_format": self.source_format, "model": self.model, "num_classes": self.num_classes,
            "input_channels": self.input_channels, "notes": list(self.notes),
            "dropped_keys": sorted({k.rsplit(".", 1)[-1] for k in self.dropped}),
        }


def file_sha256(path: Path) -> str:
    """The sha256 of a weights file, as recorded in the model card (one hasher: zoo.checkpoints)."""
    return sha256_of(path)


def cut_list(names: list[str], limit: int = 8) -> str:
    """``"a, b, c (+5 more)"``: the first ``limit`` names, for error messages about keys."""
    return ", ".join(names[:limit]) + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def ensure_cached(name: str, directory: Path | None, force: bool, find_source: Callable[[], Path | None],
                  convert: Callable[[Path, Path], object]) -> str | None:
    """The checkpoint ``name`` if the search path (``directory`` first) has it and ``force`` is
    off; else ``convert(source, target)`` the installed package's file found by ``find_source``
    into ``directory`` (default the user checkpoint directory) and return ``name``; ``None`` when
    neither the checkpoint nor the source is there. What every packaged-weights importer does."""
    from zoo.checkpoints import CheckpointError, locate_checkpoint, search_path, user_checkpoint_dir

    if not force:
        try:
            locate_checkpoint(name, search_path(directory))
            return name
        except CheckpointError:
            pass
    source = find_source()
    if source is None:
        return None
    target = Path(directory or user_checkpoint_dir())
    target.mkdir(parents=True, exist_ok=True)
    convert(source, target)
    return name


def describe_mismatch(expected: Mapping[str, tuple[int, ...]], got: Mapping[str, np.ndarray], limit: int = 8) -> str:
    """'missing a, b; unexpected c; x: shape (..), expected (..)', each list cut at ``limit``."""
    def cut(names: list[str]) -> str:
        return cut_list(names, limit)

    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    shapes = [f"{n}: shape {tuple(got[n].shape)}, expected {expected[n]}"
              for n in sorted(set(expected) & set(got)) if tuple(got[n].shape) != tuple(expected[n])]
    parts = []
    if missing:
        parts.append(f"missing {cut(missing)}")
    if unexpected:
        parts.append(f"unexpected {cut(unexpected)}")
    if shapes:
        parts.append(cut(shapes))
    return "; ".join(parts)

