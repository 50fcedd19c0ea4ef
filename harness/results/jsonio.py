"""The JSON every stored file is written in: standard JSON only.

Python's ``json`` writes ``NaN`` and ``Infinity`` by default, which strict readers (``jq``,
JavaScript, most JSON libraries) refuse. A non-finite float is written as ``null`` instead
(the readers turn a missing number back into NaN), and ``allow_nan=False`` proves none slipped
through."""

from __future__ import annotations

import json
import math
from typing import Any


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, +-inf) replaced by ``None``, recursively."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of ``obj`` as standard JSON (non-finite floats as ``null``)."""
    return json.dumps(finite(obj), allow_nan=False, **kwargs)
