"""The downloader and ``zoo fetch``, against a local HTTP server on 127.0.0.1 serving files the
test wrote (never the internet)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from conftest import run_zoo
from local_http import LocalServer, closed_port_url
from zoo.download import Checksum, ChecksumError, DownloadError, OfflineError, fetch, sha256

BODY = bytes(range(256)) * 4000  # ~1 MB, several read chunks


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def server():
    with LocalServer() as srv:
        srv.state.files["/f.bin"] = BODY
        yield srv


def test_download_then_cache_hit_without_a_request(server, tmp_path):
    got = fetch(server.url + "/f.bin", "f.bin", sha256(sha(BODY)), "sub", cache=tmp_path)
    assert got.path == tmp_path / "sub" / "f.bin" and got.path.read_bytes() == BODY and not got.from_cache
    assert got.digests.sha256 == sha(BODY) and not (tmp_path / "sub" / "f.bin.part").exists()
    again = fetch(server.url + "/f.bin", "f.bin", sha256(sha(BODY)), "sub", cache=tmp_path)
    assert again.from_cache and len(server.state.requests) == 1


def test_resume_a_truncated_part_file_with_a_range_request(server, tmp_path):
    (tmp_path / "f.bin.part").write_bytes(BODY[:300_001])
    got = fetch(server.url + "/f.bin", "f.bin", sha256(sha(BODY)), cache=tmp_path)
    assert got.path.read_bytes() == BODY
    assert server.state.requests == [("/f.bin", "bytes=300001-")]


def test_a_server_that_ignores_range_restarts_the_file(server, tmp_path):
    server.state.ignore_range = True
    (tmp_path / "f.bin.part").write_bytes(b"garbage" * 10)
    assert fetch(server.url + "/f.bin", "f.bin", sha256(sha(BODY)), cache=tmp_path).path.read_bytes() == BODY


def test_an_interrupted_transfer_keeps_the_part_file_and_the_next_run_resumes(server, tmp_path):
    server.state.cut_after["/f.bin"] = 100_000
    with pytest.raises(DownloadError, match="run the same command again to resume"):
        fetch(server.url + "/f.bin", "f.bin", sha256(sha(BODY)), cache=tmp_path)
    assert (tmp_path / "f.bin.part").stat().st_size == 100_000 and not (tmp_path / "f.bin").exists()
    assert fetch(server.url + "/f.bin", "f.bin", sha256(sha(BODY)), cache=tmp_path).path.read_bytes() == BODY
    assert server.state.requests[-1] == ("/f.bin", "bytes=100000-")


def test_checksum_mismatch_leaves_nothing_in_the_cache(server, tmp_path):
    with pytest.raises(ChecksumError, match="does not match the published checksum.*deleted"):
        fetch(server.url + "/f.bin", "f.bin", sha256("0" * 64), "sub", cache=tmp_path)
    assert list((tmp_path / "sub").iterdir()) == []


def test_a_corrupt_cached_file_is_replaced(server, tmp_path):
    (tmp_path / "f.bin").write_bytes(b"not it")
    got = fetch(server.url + "/f.bin", "f.bin", sha256(sha(BODY)), cache=tmp_path)
    assert not got.from_cache and got.path.read_bytes() == BODY


def test_md5_and_sha256_prefix_checksums(server, tmp_path):
    md5 = hashlib.md5(BODY).hexdigest()
    assert fetch(server.url + "/f.bin", "a.bin", Checksum("md5", md5), cache=tmp_path).digests.md5 == md5
    assert fetch(server.url + "/f.bin", "b.bin", Checksum("sha256-prefix", sha(BODY)[:8]), cache=tmp_path).path.exists()
    with pytest.raises(ChecksumError):
        fetch(server.url + "/f.bin", "c.bin", Checksum("sha256-prefix", "00000000"), cache=tmp_path)
    with pytest.raises(ValueError):
        Checksum("crc32", "abcd")


def test_unreachable_server_is_a_clear_offline_error(tmp_path):
    url = closed_port_url() + "/weights.pth"
    with pytest.raises(OfflineError) as exc:
        fetch(url, "weights.pth", sha256("a" * 64), "w", cache=tmp_path)
    msg = str(exc.value)
    assert url in msg and str(tmp_path / "w" / "weights.pth") in msg and "offline" in msg


def test_http_errors_name_the_status(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(server.url + "/missing.bin", "m.bin", sha256("a" * 64), cache=tmp_path)


def test_fetch_published_downloads_imports_and_writes_a_carded_checkpoint(server, tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    import torchvision_mirror as tvm
    from zoo.checkpoints import load_checkpoint
    from zoo.importers import published

    model = tvm.resnet18(num_classes=1000)
    path = tmp_path / "resnet18-test.pth"
    torch.save(model.state_dict(), path)
    blob = path.read_bytes()
    server.state.files["/models/resnet18-test.pth"] = blob
    entry = published.Published("resnet18", "torchvision", "TEST", server.url + "/models/resnet18-test.pth",
                                "resnet18-test.pth", Checksum("sha256-prefix", sha(blob)[:8]), 69.758,
                                "BSD-3-Clause", "test recipe", "prefix in the file name")
    monkeypatch.setattr(published, "PUBLISHED", (entry,))
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    got, ckpt, cached = published.fetch_published("resnet18", "torchvision", out=tmp_path / "ckpt")
    assert not cached and ckpt.name == "resnet18-torchvision-test" and ckpt.accuracy == pytest.approx(0.69758)
    assert ckpt.card["source_sha256"] == sha(blob) and "not measured by zoo-bench" in ckpt.card["accuracy"]
    _, weights = load_checkpoint(ckpt.name, tmp_path / "ckpt")
    assert np.array_equal(weights["head.kernel"], model.fc.weight.detach().numpy().T)
    _, _, cached = published.fetch_published("resnet18", "torchvision", out=tmp_path / "ckpt")
    assert cached and len(server.state.requests) == 1


def test_the_published_table_is_well_formed():
    from zoo.importers.published import PUBLISHED, FetchError, find_published

    for p in PUBLISHED:
        assert p.url.startswith("https://") and p.filename
        if p.source == "torchvision":  # torch.hub convention: the hash prefix is in the file name
            assert p.checksum.algorithm == "sha256-prefix" and f"-{p.checksum.value}." in p.url
    assert find_published("resnet50", "keras").model == "resnet50-keras"
    assert find_published("resnet50", "torchvision").tag == "IMAGENET1K_V1"
    with pytest.raises(FetchError, match="no published keras weights for 'resnet18'"):
        find_published("resnet18", "keras")


def test_zoo_fetch_cli_errors_are_clear(tmp_path):
    env = {"ZOO_CACHE_DIR": str(tmp_path)}
    proc = run_zoo("fetch", "resnet18", "--source", "hf", env=env)
    assert proc.returncode == 2 and "--sha256" in proc.stdout and "Traceback" not in proc.stderr
    proc = run_zoo("fetch", "resnet18", "--source", "torchvision", "--base-url", closed_port_url(), env=env)
    assert proc.returncode == 2 and "could not reach" in proc.stdout.replace("\n", " ")
    assert "resnet18-f37072fd.pth" in proc.stdout.replace("\n", "")
    listing = run_zoo("fetch", "--list", env=env)
    assert listing.returncode == 0 and "download.pytorch.org" in listing.stdout
