"""Shared fixtures: run the real ``zoo`` command in a subprocess, build fake plugin distributions."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_zoo(*args: str, env: dict | None = None, timeout: float = 600, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m harness.cli ARGS`` as a user would run ``zoo ARGS``."""
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=cwd or ROOT)


@pytest.fixture
def zoo_cli():
    return run_zoo


def make_distribution(root: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> Path:
    """Write an installed-looking distribution (``*.dist-info`` with ``entry_points.txt``) plus its
    modules into ``root``; putting ``root`` on ``sys.path``/``PYTHONPATH`` makes importlib.metadata
    discover it exactly as it discovers a pip-installed plugin."""
    root.mkdir(parents=True, exist_ok=True)
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[zoo]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))
    return root


@pytest.fixture
def fake_distribution(tmp_path, monkeypatch):
    """Factory: create a fake plugin distribution and put it on sys.path for this test."""

    def factory(dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> Path:
        root = make_distribution(tmp_path / f"site-{dist}", dist, entry_points, modules)
        monkeypatch.syspath_prepend(str(root))
        for name in modules:
            sys.modules.pop(name, None)
        return root

    return factory


def plugin_installed(distribution: str) -> bool:
    from importlib import metadata

    try:
        metadata.distribution(distribution)
        return True
    except metadata.PackageNotFoundError:
        return False


def needs_plugin(*distributions: str):
    """Skip unless these plugin distributions are installed (``make test`` installs all)."""
    missing = [d for d in distributions if not plugin_installed(d)]
    return pytest.mark.skipif(bool(missing), reason=f"{', '.join(missing)} not installed (make test installs every plugin)")


#: The built-in framework plugins that are installed here, by framework name.
BUILTIN_FRAMEWORKS = {"torch": "zoo-torch", "tf": "zoo-tf", "jax": "zoo-jax"}
INSTALLED_FRAMEWORKS = [name for name, dist in BUILTIN_FRAMEWORKS.items() if plugin_installed(dist)]
needs_two_frameworks = pytest.mark.skipif(
    len(INSTALLED_FRAMEWORKS) < 2, reason=f"needs two framework plugins, have {INSTALLED_FRAMEWORKS}")



@pytest.fixture(scope="session")
def adapters():
    """Every installed built-in adapter, prepared once per test process (TF's thread settings can
    only be applied once)."""
    from zoo.plugin_host import load_plugins
    from harness.plugins.registry import build_registry
    from zoo.contract import Runtime

    registry = build_registry(load_plugins(autoload=True))
    out = {}
    for name in INSTALLED_FRAMEWORKS:
        adapter = registry.framework(name).item
        adapter.prepare(Runtime("cpu", "fp32", threads=2, seed=0))
        out[name] = adapter
    return out
