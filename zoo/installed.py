"""Files shipped inside installed packages (weights, corpora, photos), found without importing
the package: some print or import heavy dependencies at import time, and some were installed
``--no-deps`` so their imports would fail."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def package_dir(module: str) -> Path | None:
    """The directory of the installed top-level package ``module``, or ``None`` when it is not
    installed (or is a single-file module)."""
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations)))
