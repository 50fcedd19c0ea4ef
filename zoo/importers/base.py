"""What every importer shares: the record of imported weights, the error, and file helpers.

The importer modules import this one, never the package (whose ``__init__`` dispatches to them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

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


def describe_mismatch(expected: Mapping[str, tuple[int, ...]], got: Mapping[str, np.ndarray], limit: int = 8) -> str:
    """'missing a, b; unexpected c; x: shape (..), expected (..)', each list cut at ``limit``."""
    def cut(names: list[str]) -> str:
        return ", ".join(names[:limit]) + (f" (+{len(names) - limit} more)" if len(names) > limit else "")

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

