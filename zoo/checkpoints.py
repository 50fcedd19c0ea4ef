"""Canonical checkpoints: safetensors files plus a manifest that records each file's sha256.

A checkpoint's bytes are hashed and compared with the manifest *before* they are parsed, so a
corrupt or swapped file is refused before any framework sees it. Only safetensors is read: no
pickle, from any source.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import stat
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, BinaryIO, Mapping

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


#: The largest header (the JSON after the 8-byte length) a safetensors file may have here. The
#: safetensors library allows 100 MB; a zoo checkpoint's is a few KB, a large published model's
#: well under 1 MB.
MAX_HEADER_BYTES = 16 << 20
#: The most tensor data one safetensors file may hold (default 4 GiB; ResNet-152 in float32 is
#: 240 MB); ``$ZOO_MAX_CHECKPOINT_BYTES`` raises it.
DEFAULT_MAX_CHECKPOINT_BYTES = 4 << 30
#: Bytes per element of each safetensors dtype.
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


def max_checkpoint_bytes() -> int:
    """The tensor-data limit: ``$ZOO_MAX_CHECKPOINT_BYTES`` or :data:`DEFAULT_MAX_CHECKPOINT_BYTES`."""
    raw = os.environ.get("ZOO_MAX_CHECKPOINT_BYTES", "").strip()
    if not raw:
        return DEFAULT_MAX_CHECKPOINT_BYTES
    try:
        value = int(raw)
    except ValueError:
        raise CheckpointError(f"ZOO_MAX_CHECKPOINT_BYTES={raw!r} is not a whole number of bytes") from None
    if value < 1:
        raise CheckpointError(f"ZOO_MAX_CHECKPOINT_BYTES={raw!r} must be at least 1")
    return value


def check_safetensors_header(fh: BinaryIO, size: int, path: Path | str) -> dict[str, Any]:
    """Read and check the header of the safetensors file open as ``fh`` (``size`` bytes in all)
    *before* any tensor is read: the 8-byte little-endian header length must fit the file and
    :data:`MAX_HEADER_BYTES`; the header must be a UTF-8 JSON object whose every tensor has a
    known dtype, a shape of non-negative integers, and ``data_offsets`` inside the file whose
    length is exactly shape x dtype; the tensors must neither overlap nor leave gaps, and their
    data must fit :func:`max_checkpoint_bytes`. Raises :class:`CheckpointError` naming the file
    and what is wrong; returns the header. Reads at most 8 + the header's length bytes."""
    limit = max_checkpoint_bytes()

    def refuse(why: str) -> CheckpointError:
        return CheckpointError(f"{path}: refused before loading it: {why}; this is not a safetensors file zoo-bench "
                               "will read (corrupt, truncated, or crafted)")

    if size < 8:
        raise refuse(f"the file is {size} bytes, too short for the 8-byte header length")
    fh.seek(0)
    n = int.from_bytes(fh.read(8), "little")
    if n > MAX_HEADER_BYTES:
        raise refuse(f"its header length field says {n} bytes, more than the {MAX_HEADER_BYTES} bytes a header "
                     "may have")
    if 8 + n > size:
        raise refuse(f"its header length field says {n} bytes, but the file has only {size - 8} bytes after it")
    data_size = size - 8 - n
    if data_size > limit:
        raise refuse(f"it holds {data_size} bytes of tensor data, more than the limit of {limit} bytes "
                     "(ZOO_MAX_CHECKPOINT_BYTES raises it)")
    raw = fh.read(n)
    if len(raw) != n:
        raise refuse("the file ended inside its header (it changed while it was read?)")
    try:
        header = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise refuse(f"its header is not UTF-8 text (byte {exc.start + 1})") from None
    except json.JSONDecodeError as exc:
        raise refuse(f"its header is not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(header, dict):
        raise refuse("its header is not a JSON object")
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            if info is not None and not (isinstance(info, dict) and all(isinstance(v, str) for v in info.values())):
                raise refuse("its __metadata__ is not a map of text to text")
            continue
        if not isinstance(info, dict):
            raise refuse(f"tensor {name!r} is described by {type(info).__name__}, not an object")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in DTYPE_BYTES:
            raise refuse(f"tensor {name!r} has dtype {dtype!r}, not one of {', '.join(DTYPE_BYTES)}")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise refuse(f"tensor {name!r} has shape {shape!r}, not a list of non-negative integers")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
                and 0 <= offsets[0] <= offsets[1]):
            raise refuse(f"tensor {name!r} has data_offsets {offsets!r}, not [begin, end] with 0 <= begin <= end")
        # with every dimension counted (a zero one too): numpy refuses shapes whose other dimensions overflow
        promised = math.prod(max(d, 1) for d in shape) * DTYPE_BYTES[dtype]
        nbytes = math.prod(shape) * DTYPE_BYTES[dtype]
        if promised > limit:
            raise refuse(f"tensor {name!r} promises shape {shape} of {dtype}, {promised} bytes, more than the limit "
                         f"of {limit} bytes (the file has {data_size} bytes of data)")
        begin, end = offsets
        if end > data_size:
            raise refuse(f"tensor {name!r} has data_offsets [{begin}, {end}], outside the file's {data_size} bytes "
                         "of tensor data")
        if end - begin != nbytes:
            raise refuse(f"tensor {name!r} of shape {shape} and dtype {dtype} needs {nbytes} bytes, but its "
                         f"data_offsets [{begin}, {end}] give {end - begin}")
        spans.append((begin, end, name))
    at, previous = 0, ""
    for begin, end, name in sorted(spans):
        if begin < at:
            raise refuse(f"tensor {name!r} (bytes {begin}-{end}) overlaps tensor {previous!r}, which ends at {at}")
        if begin > at:
            raise refuse(f"bytes {at}-{begin} before tensor {name!r} belong to no tensor")
        at, previous = end, name
    if at != data_size:
        raise refuse(f"its tensors cover {at} of the file's {data_size} bytes of tensor data")
    return header


def read_safetensors_file(path: Path | str) -> bytes:
    """The bytes of a safetensors file, read only after :func:`check_safetensors_header` passed
    on the file (so a file promising more than it holds, or more than the limit, is refused
    before anything big is allocated), and checked again on the bytes read. Raises
    :class:`CheckpointError` naming the file."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise CheckpointError(f"{path}: refused: not a regular file")
            check_safetensors_header(fh, info.st_size, path)
            fh.seek(0)
            data = fh.read(info.st_size + 1)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) != info.st_size:
        raise CheckpointError(f"{path}: refused: the file changed size while it was read")
    check_safetensors_header(io.BytesIO(data), len(data), path)
    return data


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
    data = read_safetensors_file(path)  # the header is checked before the file is read
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
