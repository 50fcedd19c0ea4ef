"""Output formats: the record a plugin returns from ``zoo_renderers`` (:func:`zoo.hookspecs.zoo_renderers`).

A :class:`Renderer` is one value of ``--format``. It says which *views* it can render and, for
each, the function that renders it. Every command with ``--format`` offers every renderer that
has its view, the built-in ones (``table``, ``markdown``, ``html``, ``json``, ``csv``,
``parquet``, ``pytest-benchmark``, ``github-action-benchmark``, ``bencher``) and the plugins' alike:

========== ================= =====================================================================
view       command           what the function receives (attributes of one argument)
========== ================= =====================================================================
report     ``zoo report``    ``results`` (the loaded runs: ``.runs``, ``.cells``, ``.metrics``
                             pandas DataFrames), ``table`` (frameworks side by side: ``.rows``,
                             each with ``.metric``, ``.label``, ``.text(framework)``;
                             ``.frameworks``, ``.reference``, ``.key_columns()``, ``.failures``),
                             ``history`` (computed when first read; ``None`` for one run),
                             ``title``, ``catalogue``
compare    ``zoo compare``   ``comparison`` (``.rows``: one row per cell and metric with
                             ``baseline``, ``candidate``, ``change``, ``ci_low``, ``ci_high``,
                             ``q_value``, ``verdict``, ``note``; ``.counts()``, ``.baseline``,
                             ``.candidate``, ``.warnings``), ``rows`` (those to show),
                             ``show_all``, ``fail_on``, ``failures``, ``catalogue``
history    ``zoo history``   ``history`` (``.runs``, ``.values``: one row per series with one
                             column per run, ``.changes``), ``results``, ``last``, ``catalogue``
export     ``zoo export``    ``results`` (one run), ``catalogue``
========== ================= =====================================================================

``catalogue`` is the metric catalogue of the command (built-in and plugin metric definitions):
``catalogue.definition(name)`` is a :class:`zoo.metrics.MetricDef` with the metric's label and
format. What a render function returns depends on ``output``:

* ``"text"``: a ``str``, written to standard output or to ``-o FILE``;
* ``"file"``: ``bytes``, written to ``-o FILE`` (required);
* ``"directory"``: a mapping of file name to ``str`` or ``bytes``, written into ``-o DIRECTORY``
  (required);
* ``"console"``: a list of objects the ``rich`` library prints (tables, ``Text``), printed to the
  terminal (or to ``-o FILE`` without colour).

A render function raises ``ValueError`` with a message for a user error (the command prints it
and exits 2). Importing this module imports no framework and nothing of the host.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

VIEWS = ("report", "compare", "history", "export")
OUTPUTS = ("text", "file", "directory", "console")

_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


@dataclass(frozen=True)
class Renderer:
    """One output format.

    :param name: the ``--format`` value (lower-case letters, digits and ``-``).
    :param views: view name (see :data:`VIEWS`) -> function taking that view and returning the output.
    :param output: what the functions return (see :data:`OUTPUTS` and the module docs).
    :param description: one line, shown in ``--help``.
    :param suffix: the usual file suffix (``".parquet"``), for messages.
    :param every_metric: the report view loads every stored metric, not only the default
        columns (tabular formats: CSV, Parquet), unless ``--metrics`` names some.
    """

    name: str
    views: Mapping[str, Callable[[Any], Any]]
    output: str = "text"
    description: str = ""
    suffix: str = ""
    every_metric: bool = False

    def __post_init__(self) -> None:
        where = f"renderer {self.name!r}"
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(f"{where}: a format name is lower-case letters, digits and -")
        if not self.views or not all(v in VIEWS for v in self.views):
            raise ValueError(f"{where}: views must be a non-empty mapping with keys from {', '.join(VIEWS)}, "
                             f"got {list(self.views)}")
        if not all(callable(f) for f in self.views.values()):
            raise ValueError(f"{where}: each view maps to a function")
        if self.output not in OUTPUTS:
            raise ValueError(f"{where}: output must be one of {', '.join(OUTPUTS)}, got {self.output!r}")

    @property
    def needs_output(self) -> bool:
        """Whether ``-o`` is required (binary files, several files)."""
        return self.output in ("file", "directory")


__all__ = ["OUTPUTS", "Renderer", "VIEWS"]
