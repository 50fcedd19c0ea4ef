"""Download-and-cache for published weights and data sets: urllib only, checksums always.

A file lands in the cache only after its checksum matched:

1. ``<cache>/<subdir>/<filename>`` exists and verifies: returned without any request (a cache
   hit). One that does not verify is deleted (and said so in the log) and downloaded again.
2. Otherwise the bytes stream into ``<filename>.part``. A ``.part`` left by an interrupted run
   is resumed with an HTTP ``Range`` request; a server that answers 200 instead of 206 sends
   the whole file again, and the part file is restarted.
3. The finished part file is hashed. A mismatch deletes it and raises :class:`ChecksumError`;
   a match is renamed into place atomically (``os.replace``).

Errors say what to do: an unreachable host (:class:`OfflineError`) names the URL and the path
where a copy fetched elsewhere can be placed; an interrupted transfer keeps the part file and
says that running again resumes it.

The cache is ``$ZOO_CACHE_DIR`` or ``~/.cache/zoo-bench``. Checksums are what the publisher
publishes: a full sha256 where there is one, else md5 (MNIST, Fashion-MNIST and CIFAR-10 publish
md5 and TensorFlow Datasets publishes sha256 for the same URLs; Keras publishes md5 for its
weights) or torch.hub's sha256 *prefix* (the 8 hex digits in a torchvision file name). The full
sha256 of every downloaded file is returned and recorded wherever it is used.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

CHUNK = 1 << 16
ALGORITHMS = ("sha256", "sha256-prefix", "md5")


class DownloadError(RuntimeError):
    """A download failed; the message says why and what to do."""


class OfflineError(DownloadError):
    """The server could not be reached at all (no network, DNS failure, connection refused)."""


class ChecksumError(DownloadError):
    """The downloaded bytes are not the published file; nothing was kept."""


@dataclass(frozen=True)
class Checksum:
    """A published checksum: ``sha256`` (64 hex), ``md5`` (32 hex) or ``sha256-prefix`` (the
    leading hex digits of the sha256, as torch.hub file names carry)."""

    algorithm: str
    value: str

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"unknown checksum algorithm {self.algorithm!r}; use one of {ALGORITHMS}")
        lengths = {"sha256": (64,), "md5": (32,), "sha256-prefix": tuple(range(6, 65))}
        if len(self.value) not in lengths[self.algorithm] or not all(c in "0123456789abcdef" for c in self.value):
            raise ValueError(f"{self.algorithm} checksum {self.value!r} is not lower-case hex of the right length")

    def matches(self, digests: "Digests") -> bool:
        if self.algorithm == "md5":
            return digests.md5 == self.value
        if self.algorithm == "sha256-prefix":
            return digests.sha256.startswith(self.value)
        return digests.sha256 == self.value

    def __str__(self) -> str:
        return f"{self.algorithm} {self.value}"


def sha256(value: str) -> Checksum:
    return Checksum("sha256", value.lower())


@dataclass(frozen=True)
class Digests:
    sha256: str
    md5: str
    size: int


def digests_of(path: Path) -> Digests:
    s, m, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            s.update(chunk)
            m.update(chunk)
            size += len(chunk)
    return Digests(s.hexdigest(), m.hexdigest(), size)


def cache_dir() -> Path:
    """``$ZOO_CACHE_DIR``, else ``~/.cache/zoo-bench``."""
    env = os.environ.get("ZOO_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "zoo-bench"


@dataclass(frozen=True)
class Fetched:
    path: Path
    digests: Digests
    from_cache: bool


def fetch(
    url: str,
    filename: str,
    checksum: Checksum,
    subdir: str = "",
    *,
    cache: Path | None = None,
    timeout: float = 60.0,
    progress: Callable[[int, int | None], None] | None = None,
) -> Fetched:
    """Return the verified local copy of ``url``, downloading it into the cache if needed.

    ``checksum`` is required: a file whose hash nobody published must be pinned by the caller
    (``zoo fetch --sha256``). ``progress(bytes_so_far, total_or_None)`` is called as data arrives.
    """
    if not isinstance(checksum, Checksum):
        raise TypeError("fetch needs a Checksum; pin unpublished files with sha256(...)")
    directory = (cache or cache_dir()) / subdir
    target = directory / filename
    part = directory / (filename + ".part")
    if target.exists():
        digests = digests_of(target)
        if checksum.matches(digests):
            return Fetched(target, digests, True)
        log.warning("cached %s does not match %s (sha256 %s); deleting it and downloading again",
                    target, checksum, digests.sha256)
        target.unlink()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create the cache directory {directory}: {exc}; set ZOO_CACHE_DIR to a "
                            "writable directory") from exc
    _download(url, part, target, checksum, timeout, progress)
    digests = digests_of(part)
    if not checksum.matches(digests):
        part.unlink(missing_ok=True)
        raise ChecksumError(
            f"{url}: the downloaded file does not match the published checksum ({checksum}; got sha256 "
            f"{digests.sha256}, md5 {digests.md5}, {digests.size} bytes). It was deleted, nothing was cached. "
            "The server may have sent an error page or a different version; try again later, or check the URL")
    os.replace(part, target)
    return Fetched(target, digests, False)


def _offline_message(url: str, target: Path, checksum: Checksum, reason: object) -> str:
    return (f"could not reach {url} ({reason}). If this machine is offline, download the file on another "
            f"machine and place it at {target} (it must match {checksum}); it is then used without a "
            "network. The cache directory is set by ZOO_CACHE_DIR.")


def _download(url: str, part: Path, target: Path, checksum: Checksum, timeout: float,
              progress: Callable[[int, int | None], None] | None) -> None:
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "zoo-bench"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the part file already holds everything (or is bad)
            log.info("server says %s is complete at %d bytes; verifying it", part, offset)
            return
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OfflineError(_offline_message(url, target, checksum, reason)) from exc
    with response:
        resumed = offset and response.status == 206
        if offset and not resumed:
            log.info("server ignored the Range request for %s; downloading it from the start", url)
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        received = offset
        try:
            with open(part, "ab" if resumed else "wb") as fh:
                while True:
                    chunk = response.read(CHUNK)
                    if not chunk:
                        break
                    fh.write(chunk)
                    received += len(chunk)
                    if progress:
                        progress(received, total)
                fh.flush()
                os.fsync(fh.fileno())
        except (OSError, urllib.error.URLError, http.client.HTTPException) as exc:  # IncompleteRead, resets
            raise DownloadError(f"{url}: download interrupted after {received} bytes ({exc}); {part} was kept, "
                                "run the same command again to resume") from exc
    if total is not None and received < total:
        raise DownloadError(f"{url}: the connection closed after {received} of {total} bytes; {part} was kept, "
                            "run the same command again to resume")
