"""The output formats (``--format``) of ``zoo report``, ``zoo compare``, ``zoo history`` and
``zoo export``: the built-in renderers below, plus those plugins return from ``zoo_renderers``
(collected by :func:`harness.plugins.registry.build_registry`). A command asks
:func:`renderers_for` which formats render its view, resolves the user's choice and writes what
the renderer returned with :func:`write_output`; it never tests a format by name.

The built-in renderers refer to their functions by ``"module:function"`` and import them only
when used, so listing formats (``--help``, the plugin registry) imports no renderer module.
"""

from __future__ import annotations

import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from zoo.plugin_host import import_object
from zoo.renderers import VIEWS, Renderer

COMMANDS = {"report": "zoo report", "compare": "zoo compare", "history": "zoo history", "export": "zoo export"}


def _lazy(target: str) -> Callable[[Any], Any]:
    def render(view: Any) -> Any:
        return import_object(target)(view)

    render.__qualname__ = render.__name__ = target
    return render


def _views(module: str, **views: str) -> dict[str, Callable[[Any], Any]]:
    return {view: _lazy(f"harness.render.{module}:{function}") for view, function in views.items()}


BUILTIN_RENDERERS: tuple[Renderer, ...] = (
    Renderer("table", _views("table", report="render_report", compare="render_comparison", history="render_history"),
             output="console", description="a table in the terminal"),
    Renderer("markdown", _views("markdown", report="render_report", compare="render_comparison",
                                history="render_history"),
             description="GitHub-flavoured Markdown (e.g. for $GITHUB_STEP_SUMMARY)", suffix=".md"),
    Renderer("html", _views("html", report="render_report", history="render_history"),
             description="one self-contained page with inline-SVG plots that opens offline", suffix=".html"),
    Renderer("json", _views("tabular", compare="compare_json"), description="verdicts as JSON", suffix=".json"),
    Renderer("csv", _views("tabular", report="report_csv", compare="compare_csv", history="history_csv"),
             description="the long metrics frame (report), the verdicts or the series", suffix=".csv",
             every_metric=True),
    Renderer("parquet", _views("tabular", report="report_parquet"), output="file", suffix=".parquet",
             description="the long metrics frame as Parquet (needs pyarrow)", every_metric=True),
    Renderer("pytest-benchmark", _views("exports", export="render_pytest_benchmark"), suffix=".json",
             description="pytest-benchmark JSON (pytest-benchmark compare; github-action-benchmark tool 'pytest')"),
    Renderer("github-action-benchmark", _views("exports", export="render_github_action_benchmark"),
             output="directory", description="bigger_is_better.json and smaller_is_better.json for "
             "github-action-benchmark's customBiggerIsBetter / customSmallerIsBetter"),
    Renderer("bencher", _views("exports", export="render_bencher"), suffix=".json",
             description="Bencher Metric Format (bencher run --adapter json)"),
)
BUILTIN_FORMATS = tuple(r.name for r in BUILTIN_RENDERERS)


@dataclass(frozen=True)
class Renderers:
    """The renderers one command can use: the built-ins, then the plugins'."""

    renderers: tuple[Renderer, ...] = BUILTIN_RENDERERS

    def formats(self, view: str) -> tuple[str, ...]:
        """The ``--format`` values that render ``view``, built-ins first."""
        return tuple(r.name for r in self.renderers if view in r.views)

    def get(self, view: str, name: str) -> Renderer:
        """The renderer ``name`` for ``view``; ``ValueError`` naming the choices otherwise."""
        for r in self.renderers:
            if r.name == name and view in r.views:
                return r
        other = [r.name for r in self.renderers if r.name == name]
        why = f"format {name!r} cannot render {COMMANDS[view]}" if other else f"unknown format {name!r}"
        raise ValueError(f"{why}; choose from {', '.join(self.formats(view))}")

    def render(self, view: str, name: str, data: Any) -> Any:
        return self.get(view, name).views[view](data)


def renderers_for(registry: Any = None) -> Renderers:
    """The built-in renderers plus those the plugins in ``registry`` (a
    :class:`harness.plugins.registry.Registry`) provide."""
    extra: Iterable[Renderer] = ()
    if registry is not None:
        extra = [p.item for p in registry.renderers.values()]
    return Renderers((*BUILTIN_RENDERERS, *extra))


def format_help(view: str, default: str | None = "table") -> str:
    """``--format`` help: the built-in formats of ``view`` (plugins may add more)."""
    names = Renderers().formats(view)
    tail = f" (default: {default})" if default else ""
    return f"output format: {', '.join(names)}, or one a plugin adds{tail}"


class OutputError(ValueError):
    """``-o`` names a place the output cannot be written; the message says why and what to do.
    (A ``ValueError``, so a command exits 2, never 1, which ``zoo compare`` keeps for a regression.)"""


def check_output(renderer: Renderer, output: Path | None) -> None:
    """``ValueError`` when the renderer needs ``-o`` and none was given; :class:`OutputError`
    when ``output`` cannot be written (a directory where a file goes or the reverse, a missing
    or read-only parent). Commands call it before loading anything, so a typo costs nothing."""
    if output is None:
        if not renderer.needs_output:
            return
        if renderer.output == "directory":
            raise ValueError(f"--format {renderer.name} writes several files: add -o DIRECTORY")
        raise ValueError(f"--format {renderer.name} writes a file: add -o FILE{renderer.suffix}")
    output = Path(output)
    if renderer.output == "directory":
        if output.exists() and not output.is_dir():
            raise OutputError(f"cannot write -o {output}: it exists and is not a directory; --format {renderer.name} "
                              "writes several files into a directory, so give a directory")
        parent = output if output.is_dir() else _existing_ancestor(output)
        if not parent.is_dir():
            raise OutputError(f"cannot write -o {output}: {parent} is not a directory")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise OutputError(f"cannot write -o {output}: the directory {parent} is not writable (permission denied); "
                              "choose another -o")
        return
    if output.is_dir():
        raise OutputError(f"cannot write -o {output}: it is a directory; give a file name, e.g. "
                          f"{output / ('output' + (renderer.suffix or '.txt'))}")
    parent = output.parent
    if not parent.exists():
        raise OutputError(f"cannot write -o {output}: the directory {parent} does not exist; create it "
                          f"(mkdir -p {parent}) or choose another -o")
    if not parent.is_dir():
        raise OutputError(f"cannot write -o {output}: {parent} is not a directory")
    if output.exists() and not os.access(output, os.W_OK):
        raise OutputError(f"cannot write -o {output}: the file is read-only (permission denied); choose another -o")
    if not output.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write -o {output}: the directory {parent} is not writable (permission denied); "
                          "choose another -o")


def _existing_ancestor(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path(".")


def write_output(renderer: Renderer, rendered: Any, output: Path | None, announce: bool = False) -> None:
    """Write what ``renderer`` returned: to ``output`` (a file or, for ``directory`` output, a
    directory) or standard output; ``announce`` prints ``wrote PATH`` for each file written.
    A failed write raises :class:`OutputError` naming the path and why."""
    check_output(renderer, output)
    if renderer.output == "console":
        from harness.render.terminal import wide_console

        if output is None:
            _print_all(wide_console(), rendered)
            return
        buffer = io.StringIO()
        _print_all(wide_console(file=buffer), rendered)
        files = [(Path(output), buffer.getvalue())]
    elif renderer.output == "directory":
        try:
            Path(output).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot write -o {output}: {exc.strerror or exc}; choose another -o") from None
        files = [(Path(output) / name, content) for name, content in rendered.items()]
    elif output is None:
        sys.stdout.write(rendered)
        return
    else:
        files = [(Path(output), rendered)]
    for path, content in files:
        try:
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write -o {output}: writing {path} failed: {exc.strerror or exc}; "
                              "choose another -o") from None
        if announce:
            print(f"wrote {path}")


def _print_all(console: Any, items: Iterable[Any]) -> None:
    for item in items:
        console.print(item)


__all__ = ["BUILTIN_FORMATS", "BUILTIN_RENDERERS", "OutputError", "Renderers", "VIEWS", "check_output", "format_help",
           "renderers_for", "write_output"]
