"""``zoo fetch``: download published pretrained weights (or a data set) into the cache, verify them,
and import the weights as a zoo checkpoint."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from rich.markup import escape

from harness.render.terminal import wide_console


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fetch", help="download published weights (or a data set) into the cache and import them",
        description="Download into $ZOO_CACHE_DIR (default ~/.cache/zoo-bench) with checksum verification and "
        "resume, then import the weights into a zoo checkpoint. NAME is a model (resnet18, resnet50, "
        "resnet50-keras) with --source, or a data set (mnist, fashion-mnist, cifar10).",
        epilog="Examples: zoo fetch resnet18 --source torchvision; zoo fetch resnet50 --source keras; "
        "zoo fetch resnet18 --source hf --sha256 HASH; zoo fetch cifar10",
    )
    p.add_argument("name", nargs="?", help="model or data set")
    p.add_argument("--source", choices=("torchvision", "keras", "hf"), help="publisher of the weights (models only)")
    p.add_argument("--tag", help="which published weights (default: the first listed, see `zoo fetch --list`)")
    p.add_argument("--sha256", help="pin the file's full sha256 (required where none is published)")
    p.add_argument("--checkpoint-name", help="checkpoint name (default: MODEL-SOURCE-TAG)")
    p.add_argument("--out", type=Path, help="checkpoint directory (default: $ZOO_CACHE_DIR/checkpoints)")
    p.add_argument("--base-url", help="download from this directory instead of the publisher's (a mirror)")
    p.add_argument("--list", action="store_true", help="list the published files zoo knows, then exit")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from zoo.datasets import SOURCES, fetch_dataset
    from zoo.download import DownloadError
    from zoo.importers import WeightsImportError
    from zoo.importers.published import PUBLISHED, FetchError, fetch_published

    console = wide_console()
    if args.list:
        for p in PUBLISHED:
            checksum = str(p.checksum) if p.checksum else "none published: --sha256 required"
            console.print(f"{p.model:15} --source {p.source:12} --tag {p.tag:24} {p.url}  [{checksum}]",
                          markup=False, highlight=False)
        for s in SOURCES.values():
            console.print(f"{s.name:15} (data set) {', '.join(f.url for f in s.files)}", markup=False, highlight=False)
        return 0
    if not args.name:
        console.print("[bold red]error:[/] name a model or data set, or use --list", highlight=False)
        return 2
    try:
        if args.name in SOURCES:
            paths = fetch_dataset(SOURCES[args.name])
            console.print(f"{args.name}: " + ", ".join(escape(str(p)) for p in paths), highlight=False)
            return 0
        if not args.source:
            console.print("[bold red]error:[/] --source torchvision|keras|hf is required for a model", highlight=False)
            return 2
        entry, ckpt, cached = fetch_published(args.name, args.source, tag=args.tag, pin_sha256=args.sha256,
                                              name=args.checkpoint_name, out=args.out, base_url=args.base_url,
                                              command="zoo " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    except (DownloadError, FetchError, WeightsImportError, ValueError) as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        return 2
    if entry.model != args.name:
        console.print(f"note: {args.source} weights for {args.name} are the {entry.model!r} topology", highlight=False)
    console.print(f"{'cached' if cached else 'downloaded'} {escape(entry.url)}; checkpoint {escape(ckpt.name)} "
                  f"({ckpt.model}, sha256 {ckpt.sha256[:16]}...)", highlight=False)
    return 0
