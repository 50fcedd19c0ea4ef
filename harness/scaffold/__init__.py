"""``zoo new-plugin``: write a new framework plugin distribution from the templates in
``templates/`` (package data).

The result installs and passes the conformance suite as generated: its adapter is a working,
inference-only stand-in that computes with the zoo's NumPy reference, with a ``TODO`` at every
place where the new framework takes over.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

NAME = re.compile(r"^[a-z][a-z0-9_]*$")

#: template file -> path in the new distribution (``$package`` is replaced).
FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "init.py.tmpl": "$package/__init__.py",
    "adapter.py.tmpl": "$package/adapter.py",
    "test_conformance.py.tmpl": "tests/test_conformance.py",
}


class ScaffoldError(ValueError):
    """The plugin cannot be created as asked; the message says why and what to do."""


@dataclass(frozen=True)
class PluginNames:
    """The names a new plugin ``name`` gets, e.g. ``onnx``: distribution ``zoo-onnx``, package
    ``zoo_onnx``, class ``OnnxFramework``, entry point ``onnx = "zoo_onnx"`` in group ``zoo``."""

    name: str

    @property
    def distribution(self) -> str:
        return f"zoo-{self.name.replace('_', '-')}"

    @property
    def package(self) -> str:
        return f"zoo_{self.name}"

    @property
    def class_name(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_")) + "Framework"

    def substitutions(self) -> dict[str, str]:
        return {"name": self.name, "distribution": self.distribution, "package": self.package,
                "class_name": self.class_name}


def check_name(name: str) -> PluginNames:
    if not NAME.match(name) or keyword.iskeyword(name):
        raise ScaffoldError(f"plugin name {name!r}: use lowercase letters, digits and '_', starting with a letter "
                            "(it is the framework's name on the command line, e.g. `zoo bench -f onnx`)")
    return PluginNames(name)


def render(template: str, names: PluginNames) -> str:
    text = resources.files(__package__).joinpath("templates", template).read_text(encoding="utf-8")
    return Template(text).substitute(names.substitutions())


def create_plugin(name: str, directory: Path, force: bool = False) -> list[Path]:
    """Write the distribution for plugin ``name`` into ``directory`` and return the files written.
    Refuses a non-empty ``directory`` unless ``force``."""
    names = check_name(name)
    if directory.exists() and any(directory.iterdir()) and not force:
        raise ScaffoldError(f"{directory} exists and is not empty; choose another --directory (or --force to "
                            "overwrite the generated files)")
    written = []
    for template, target in FILES.items():
        path = directory / Template(target).substitute(names.substitutions())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(template, names), encoding="utf-8")
        written.append(path)
    return written
