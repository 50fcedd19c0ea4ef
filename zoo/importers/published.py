"""Published pretrained ResNet weights that ``zoo fetch`` knows, with the checksum each publisher
gives, and the fetch -> import -> checkpoint path.

Checksums, and how strong they are:

* torchvision: the file name carries the first 8 hex digits of the file's sha256 (torch.hub's
  ``check_hash`` convention); that prefix is all torchvision publishes, and it is verified.
* keras: keras-applications publishes an md5 per file (``WEIGHTS_HASHES`` in
  ``keras/src/applications/resnet.py``); it is verified. The file is a legacy Keras 2 HDF5,
  which :mod:`zoo.importers.keras` reads.
* hf (timm): the Hub serves a sha256 per file through its API, which zoo-bench cannot look up
  offline or pin here without having seen the file, so the table has none and ``zoo fetch``
  requires ``--sha256`` (copy it from the file's page on the Hub).

Every fetched file's full sha256 is recorded in the checkpoint's model card either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from zoo.download import Checksum, fetch, sha256

TORCHVISION_LICENSE = "BSD-3-Clause (torchvision); trained on ImageNet-1k, whose terms of access apply"


@dataclass(frozen=True)
class Published:
    model: str  # the zoo model the file imports into
    source: str  # torchvision | keras | hf
    tag: str
    url: str
    filename: str
    checksum: Checksum | None  # None: not published in a form we can pin; --sha256 required
    top1: float | None  # published ImageNet-1k top-1 (%), as the publisher states it
    license: str
    recipe: str
    checksum_note: str


PUBLISHED: tuple[Published, ...] = (
    Published("resnet18", "torchvision", "IMAGENET1K_V1", "https://download.pytorch.org/models/resnet18-f37072fd.pth",
              "resnet18-f37072fd.pth", Checksum("sha256-prefix", "f37072fd"), 69.758, TORCHVISION_LICENSE,
              "https://github.com/pytorch/vision/tree/main/references/classification#resnet",
              "sha256 prefix from the file name (torch.hub convention); the only hash torchvision publishes"),
    Published("resnet50", "torchvision", "IMAGENET1K_V1", "https://download.pytorch.org/models/resnet50-0676ba61.pth",
              "resnet50-0676ba61.pth", Checksum("sha256-prefix", "0676ba61"), 76.130, TORCHVISION_LICENSE,
              "https://github.com/pytorch/vision/tree/main/references/classification#resnet",
              "sha256 prefix from the file name (torch.hub convention)"),
    Published("resnet50", "torchvision", "IMAGENET1K_V2", "https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
              "resnet50-11ad3fa6.pth", Checksum("sha256-prefix", "11ad3fa6"), 80.858, TORCHVISION_LICENSE,
              "https://github.com/pytorch/vision/issues/3995#issuecomment-1013906621",
              "sha256 prefix from the file name (torch.hub convention)"),
    Published("resnet50-keras", "keras", "imagenet",
              "https://storage.googleapis.com/tensorflow/keras-applications/resnet/resnet50_weights_tf_dim_ordering_tf_kernels.h5",
              "resnet50_weights_tf_dim_ordering_tf_kernels.h5", Checksum("md5", "2cb95161c43110f7111970584f804107"),
              None, "MIT (keras-applications weights, converted from the original Caffe model); ImageNet-1k terms apply",
              "He et al. 2016 (original Caffe ResNet-50, converted to Keras)",
              "md5 from keras.applications.resnet WEIGHTS_HASHES; legacy Keras 2 HDF5"),
    Published("resnet18", "hf", "timm/resnet18.a1_in1k",
              "https://huggingface.co/timm/resnet18.a1_in1k/resolve/main/model.safetensors",
              "timm-resnet18.a1_in1k.safetensors", None, None, "Apache-2.0 (timm); ImageNet-1k terms apply",
              "timm 'ResNet strikes back' A1 recipe (LAMB, BCE, 600 epochs)",
              "not published in a form zoo-bench can pin offline: pass --sha256 from the file's Hub page"),
    Published("resnet50", "hf", "timm/resnet50.a1_in1k",
              "https://huggingface.co/timm/resnet50.a1_in1k/resolve/main/model.safetensors",
              "timm-resnet50.a1_in1k.safetensors", None, None, "Apache-2.0 (timm); ImageNet-1k terms apply",
              "timm 'ResNet strikes back' A1 recipe (LAMB, BCE, 600 epochs)",
              "not published in a form zoo-bench can pin offline: pass --sha256 from the file's Hub page"),
)

#: ``zoo fetch resnet50 --source keras`` means the Keras topology: say so rather than guess.
ALIASES = {("resnet50", "keras"): "resnet50-keras"}


class FetchError(RuntimeError):
    """No published file for this request, or a checksum is required and missing."""


def find_published(model: str, source: str, tag: str | None = None) -> Published:
    model = ALIASES.get((model, source), model)
    matches = [p for p in PUBLISHED if p.model == model and p.source == source and (tag is None or p.tag == tag)]
    if not matches:
        known = "; ".join(f"{p.model} --source {p.source} --tag {p.tag}" for p in PUBLISHED)
        raise FetchError(f"no published {source} weights for {model!r}" + (f" with tag {tag!r}" if tag else "")
                         + f"; known: {known}")
    return matches[0]  # the first listed is the default tag


def fetch_published(
    model: str,
    source: str,
    *,
    tag: str | None = None,
    pin_sha256: str | None = None,
    name: str | None = None,
    out: Path | None = None,
    base_url: str | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    command: str = "",
) -> tuple[Published, Any, bool]:
    """Download (or reuse from the cache) the published file, import it and write a zoo
    checkpoint with its model card. ``pin_sha256`` adds a full-sha256 check (required where the
    table has no checksum). ``base_url`` replaces the URL's directory (mirrors, tests).
    Returns ``(entry, CheckpointEntry, from_cache)``."""
    from zoo.importers import import_weights, save_imported

    entry = find_published(model, source, tag)
    checksum = sha256(pin_sha256) if pin_sha256 else entry.checksum
    if checksum is None:
        raise FetchError(f"{entry.url}: {entry.checksum_note}. Run again with --sha256 HASH")
    url = entry.url if base_url is None else base_url.rstrip("/") + "/" + entry.url.rsplit("/", 1)[1]
    got = fetch(url, entry.filename, checksum, f"weights/{source}", progress=progress)
    if pin_sha256 and entry.checksum is not None and not entry.checksum.matches(got.digests):
        raise FetchError(f"{got.path} matches --sha256 but not the published {entry.checksum}")
    imported = import_weights(source, got.path, model=entry.model)
    card = {
        "summary": f"{entry.model} with {entry.source} {entry.tag} ImageNet-1k weights, imported into the zoo layout",
        "source_data": "ImageNet-1k (ILSVRC 2012), 1000 classes, 224x224",
        "recipe": entry.recipe,
        "accuracy": (f"{entry.top1}% top-1 on ImageNet-1k val, as published by {entry.source}; not measured by zoo-bench"
                     if entry.top1 is not None else "not published with the file; not measured by zoo-bench"),
        "license": entry.license,
        "url": entry.url,
        "source_checksum": f"{checksum} ({entry.checksum_note})" if not pin_sha256 else f"{checksum} (pinned with --sha256)",
    }
    command = command or f"zoo fetch {model} --source {source}" + (f" --tag {tag}" if tag else "")
    ckpt = save_imported(imported, name or f"{entry.model}-{entry.source}-{entry.tag.replace('/', '-').lower()}",
                         out, source_task="imagenet-1k", accuracy=entry.top1 / 100 if entry.top1 else None,
                         card=card, command=command)
    return entry, ckpt, got.from_cache
