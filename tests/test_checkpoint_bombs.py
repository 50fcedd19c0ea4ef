"""Resource bombs in safetensors files: a header that promises more than the file holds (or more
than any zoo model needs), a huge header length, offsets outside the file or overlapping, are
refused before anything is allocated, with an error naming the file.

Both readers are attacked: ``load_checkpoint`` (a user checkpoint directory, ``--checkpoint-dir``:
the manifest and the file are crafted together, so the sha256 matches) and ``zoo import``
(``import_weights("hf", FILE)``). The files are tiny, or sparse (no disk used); the sparse ones
are read in a subprocess whose address space is limited, so a reader that allocated what the
header promises fails there with MemoryError instead of taking the machine's memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from zoo.checkpoints import CheckpointEntry, CheckpointError, load_checkpoint, write_manifest
from zoo.importers import WeightsImportError, import_weights

ROOT = Path(__file__).resolve().parent.parent


def blob(header: dict, data: bytes = b"", length: int | None = None) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def crafted_checkpoint(directory: Path, content: bytes, sha256: str | None = None) -> str:
    """A checkpoint directory holding ``content`` as checkpoint ``bomb``, its manifest entry made
    to match (the attacker writes both)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "bomb.safetensors").write_bytes(content)
    entry = CheckpointEntry.from_dict({
        "name": "bomb", "model": "mlp", "file": "bomb.safetensors",
        "sha256": sha256 or hashlib.sha256(content).hexdigest(), "source_task": "digits", "num_classes": 10,
        "input_shape": [8, 8, 1], "accuracy": None})
    write_manifest({"bomb": entry}, directory)
    return "bomb"


def read_both(tmp_path: Path, content: bytes) -> list[str]:
    """The error message of each reader for a file of ``content``."""
    messages = []
    name = crafted_checkpoint(tmp_path / "ckpt", content)
    with pytest.raises(CheckpointError) as by_checkpoint:
        load_checkpoint(name, tmp_path / "ckpt")
    messages.append(str(by_checkpoint.value))
    imported = tmp_path / "model.safetensors"
    imported.write_bytes(content)
    with pytest.raises(WeightsImportError) as by_import:
        import_weights("hf", imported)
    messages.append(str(by_import.value))
    assert str(tmp_path / "ckpt" / "bomb.safetensors") in messages[0]
    assert str(imported) in messages[1]
    return messages


F32 = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}


def test_a_header_length_far_beyond_the_file_is_refused_naming_the_length(tmp_path):
    for message in read_both(tmp_path, blob({"w": F32}, b"\0" * 4, length=1 << 62)):
        assert "refused before loading" in message and f"header length field says {1 << 62} bytes" in message


def test_a_header_length_within_the_file_but_over_the_header_limit_is_refused(tmp_path):
    # 40 MB of header (under the safetensors library's own 100 MB limit), in a sparse file
    length = 40 << 20
    content = blob({"w": F32}, length=length)
    path = tmp_path / "sparse.safetensors"
    with open(path, "wb") as fh:
        fh.write(content[:8])
        fh.truncate(8 + length)
    for message in read_both(tmp_path, path.read_bytes()):
        assert f"header length field says {length} bytes, more than" in message


def test_a_tensor_promising_far_more_than_the_file_holds_is_refused(tmp_path):
    header = {"w": {"dtype": "F32", "shape": [1 << 40], "data_offsets": [0, 4]}}
    for message in read_both(tmp_path, blob(header, b"\0" * 4)):
        assert "tensor 'w' promises shape [1099511627776] of F32" in message


def test_a_shape_whose_size_overflows_64_bits_is_refused(tmp_path):
    header = {"w": {"dtype": "F32", "shape": [1 << 32, 1 << 32], "data_offsets": [0, 0]}}
    for message in read_both(tmp_path, blob(header)):
        assert "tensor 'w' promises shape" in message


def test_a_zero_dimension_does_not_hide_a_huge_shape(tmp_path):
    header = {"w": {"dtype": "F32", "shape": [0, 1 << 62], "data_offsets": [0, 0]}}
    for message in read_both(tmp_path, blob(header)):
        assert "tensor 'w' promises shape [0, 4611686018427387904]" in message


def test_offsets_pointing_outside_the_file_are_refused(tmp_path):
    header = {"w": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}
    for message in read_both(tmp_path, blob(header, b"\0" * 4)):
        assert "data_offsets [0, 4000], outside the file's 4 bytes" in message


def test_overlapping_tensors_are_refused(tmp_path):
    header = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
              "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}
    for message in read_both(tmp_path, blob(header, b"\0" * 12)):
        assert "tensor 'b' (bytes 4-12) overlaps tensor 'a'" in message


def test_two_tensors_sharing_the_same_bytes_are_refused(tmp_path):
    header = {"a": F32, "b": F32}
    for message in read_both(tmp_path, blob(header, b"\0" * 4)):
        assert "overlaps tensor" in message


def test_a_header_that_is_not_json_is_refused(tmp_path):
    raw = b"\xff\xfe not json"
    for message in read_both(tmp_path, struct.pack("<Q", len(raw)) + raw):
        assert "header is not UTF-8" in message


_SPARSE_READER = textwrap.dedent("""
    import resource, sys
    from pathlib import Path
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, resource.RLIM_INFINITY))
    from zoo.checkpoints import CheckpointError, load_checkpoint
    from zoo.importers import WeightsImportError, import_weights
    try:
        if sys.argv[1] == "checkpoint":
            load_checkpoint("bomb", Path(sys.argv[2]))
        else:
            import_weights("hf", sys.argv[2])
    except (CheckpointError, WeightsImportError) as exc:
        print("REFUSED", exc)
    else:
        print("LOADED")
""")


@pytest.mark.parametrize("reader", ["checkpoint", "import"])
def test_a_sparse_file_holding_what_its_header_promises_is_refused_before_it_is_read(tmp_path, reader):
    """64 GiB of tensor data, consistent with its header, but sparse: no disk is used, and a
    reader that read or copied it would allocate 64 GiB. (The manifest's sha256 cannot be made
    to match without reading 64 GiB; the old reader read the whole file before comparing.)"""
    size = 64 << 30
    content = blob({"w": {"dtype": "U8", "shape": [size], "data_offsets": [0, size]}})
    directory = tmp_path / "ckpt"
    crafted_checkpoint(directory, b"", sha256="0" * 64)
    target = directory / "bomb.safetensors" if reader == "checkpoint" else tmp_path / "model.safetensors"
    with open(target, "wb") as fh:
        fh.write(content)
        fh.truncate(len(content) + size)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", _SPARSE_READER, reader, str(directory if reader == "checkpoint"
                                                                               else target)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.stdout.startswith("REFUSED"), proc.stdout + proc.stderr[-2000:]
    assert str(target) in proc.stdout
    assert f"holds {size} bytes of tensor data, more than the limit" in proc.stdout
