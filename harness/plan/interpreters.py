"""``zoo bench --python FRAMEWORK[@LABEL]=PATH``: check, before any cell runs, that another
interpreter can run that framework's workers, and ask its plugin there about the cells.

The CUDA builds of torch, ``tensorflow[and-cuda]`` and ``jax[cuda12]`` pin conflicting
``nvidia-*`` wheels, so on a GPU machine each framework may live in its own virtual environment;
two versions of one framework (``torch@2.12`` beside ``torch``) need two. One quick subprocess per
distinct interpreter proves that it is an executable Python that imports ``harness``, ``zoo``
(the same zoo-bench version as this process: a worker reads the plans this version writes) and
every plugin module its cells' workers register, and asks that environment's adapter whether it
supports each cell and which variables its worker needs (``supports``/``subprocess_env``: a
``tensorflow-cpu`` beside the harness must not decide for a CUDA TensorFlow elsewhere). Plugin
modules import no framework, so neither this process nor the probe imports one.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import zoo

from harness.plan.request import PlanError

#: Seconds the probe may take (imports of harness, zoo and the plugin modules, no framework).
PROBE_TIMEOUT_S = 120
_MARK = "ZOO-INTERPRETER-PROBE "

# Runs in the other interpreter; stdlib first, so a missing package is reported, not a traceback.
_PROBE = r'''
import importlib, json, platform, sys
from importlib import metadata
request = json.loads(sys.argv[1])
out = {"executable": sys.executable, "python": platform.python_version(), "failed": None}
def fail(module, exc):
    out["failed"] = {"module": module, "error": f"{type(exc).__name__}: {exc}"}
    print("ZOO-INTERPRETER-PROBE " + json.dumps(out)); sys.exit(0)
for module in ("zoo", "harness", "harness.worker.cell"):
    try:
        importlib.import_module(module)
    except BaseException as exc:
        fail(module, exc)
import zoo
out["zoo_bench"], out["contract_version"] = zoo.__version__, zoo.CONTRACT_VERSION
if zoo.__version__ != request["zoo_bench"]:
    print("ZOO-INTERPRETER-PROBE " + json.dumps(out)); sys.exit(0)
for module in request["modules"]:
    try:
        importlib.import_module(module)
    except BaseException as exc:
        fail(module, exc)
out["distributions"] = {}
for dist in request["distributions"]:
    try:
        out["distributions"][dist] = metadata.version(dist)
    except metadata.PackageNotFoundError:
        out["distributions"][dist] = None
from harness.plan.interpreters import answer_queries
try:
    out["answers"] = answer_queries(request["modules"], request["queries"])
except BaseException as exc:
    fail("(asking the adapters)", exc)
print("ZOO-INTERPRETER-PROBE " + json.dumps(out))
'''


@dataclass(frozen=True)
class Query:
    """One cell asked of the adapter in the other environment."""

    framework: str
    model: str
    device: str
    precision: str
    threads: int
    seed: int
    variant: str = ""


@dataclass(frozen=True)
class Answer:
    """What the other environment's adapter said about a :class:`Query`."""

    ok: bool
    reason: str = ""
    env: Mapping[str, str] = field(default_factory=dict)  # its subprocess_env for the cell


@dataclass(frozen=True)
class Interpreter:
    """An interpreter ``--python`` named, as its probe found it (recorded in the manifest)."""

    path: str  # as given (absolute); never resolved, so a venv's python stays in its venv
    executable: str  # its sys.executable
    python: str  # its Python version
    zoo_bench: str
    distributions: Mapping[str, str | None] = field(default_factory=dict)  # plugin distribution -> version there
    answers: tuple[Answer, ...] = ()


def answer_queries(modules: Sequence[str], queries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Run in the probed interpreter: ``supports`` and ``subprocess_env`` of each queried cell,
    from the adapters registered by exactly ``modules`` (as a worker registers them)."""
    from zoo.contract import Runtime
    from zoo.plugin_host import worker_host

    from harness.plugins.registry import build_registry

    registry = build_registry(worker_host(modules))
    out = []
    for raw in queries:
        q = Query(**raw)
        adapter, spec = registry.framework(q.framework).item, registry.model(q.model).item
        support = adapter.supports(spec, q.device, q.precision)
        env = dict(adapter.subprocess_env(Runtime(q.device, q.precision, q.threads, q.seed, variant=q.variant)))
        out.append({"ok": bool(support.ok), "reason": support.reason, "env": env})
    return out


def install_hint(path: str, distributions: Sequence[str]) -> str:
    """The pip command that makes ``path``'s environment able to run these plugins' workers: from
    a zoo-bench checkout, editable installs of it and of its ``plugins/`` (as ``make`` does)."""
    root = Path(__file__).resolve().parents[2]
    checkout = (root / "pyproject.toml").is_file()
    parts = ["-e ." if checkout else "zoo-bench"]
    for dist in distributions:
        parts.append(f"-e plugins/{dist}" if checkout and (root / "plugins" / dist).is_dir() else dist)
    where = f" (in the zoo-bench checkout {root})" if checkout else ""
    return f"{path} -m pip install {' '.join(parts)}{where}"


def probe(spec: str, path: str, modules: Sequence[str], distributions: Sequence[str],
          queries: Sequence[Query], timeout_s: float = PROBE_TIMEOUT_S) -> Interpreter:
    """Check interpreter ``path`` (from ``--python SPEC=PATH``) in one subprocess and return what
    it found; :class:`PlanError` naming the path, what failed and the fix otherwise."""
    flag = f"--python {spec}={path}"
    hint = install_hint(path, distributions)
    target = Path(path)
    if not target.exists():
        raise PlanError(f"{flag}: no such file. Give the interpreter of that framework's environment, e.g. "
                        f"/envs/{spec.split('@')[0]}/bin/python; to make one: python -m venv ENV && "
                        f"{hint.replace(path, 'ENV/bin/python', 1)}")
    if target.is_dir() or not os.access(target, os.X_OK):
        raise PlanError(f"{flag}: not an executable file; give the environment's bin/python "
                        f"(e.g. {target / 'bin' / 'python' if target.is_dir() else path}), or make it executable")
    request = {"zoo_bench": zoo.__version__, "modules": list(modules), "distributions": list(distributions),
               "queries": [asdict(q) for q in queries]}
    try:
        proc = subprocess.run([path, "-c", _PROBE, json.dumps(request)], capture_output=True, text=True,
                              timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise PlanError(f"{flag}: checking it took longer than {timeout_s:g} s (it imports only harness, zoo and "
                        "the plugin modules); is that file system slow, or the interpreter stuck?") from None
    except OSError as exc:
        raise PlanError(f"{flag}: cannot run it ({exc.strerror or exc}); give a Python interpreter, e.g. an "
                        "environment's bin/python") from None
    found = [line[len(_MARK):] for line in proc.stdout.splitlines() if line.startswith(_MARK)]
    if not found:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise PlanError(f"{flag}: it is not a Python this harness can use (exit status {proc.returncode}: {last}); "
                        f"give a Python 3 interpreter with zoo-bench installed: {hint}")
    out = json.loads(found[-1])
    if out.get("failed"):
        module, error = out["failed"]["module"], out["failed"]["error"]
        what = "which every worker needs" if module in ("zoo", "harness", "harness.worker.cell") else \
            "which its cells' workers register"
        raise PlanError(f"{flag}: that interpreter cannot import {module} ({error}), {what}; install zoo-bench and "
                        f"the plugin there: {hint}")
    if out.get("zoo_bench") != zoo.__version__:
        raise PlanError(f"{flag}: its zoo-bench is {out.get('zoo_bench')}, this one is {zoo.__version__}; a worker "
                        f"must read the plans this version writes, so install this zoo-bench there: {hint}")
    missing = [d for d, v in out.get("distributions", {}).items() if v is None]
    if missing:
        raise PlanError(f"{flag}: its modules import, but the distribution(s) {', '.join(missing)} are not "
                        f"installed there, so the record could not say which plugin version ran; {hint}")
    answers = tuple(Answer(a["ok"], a.get("reason", ""), dict(a.get("env") or {})) for a in out.get("answers", []))
    return Interpreter(path=path, executable=out["executable"], python=out["python"], zoo_bench=out["zoo_bench"],
                       distributions=dict(out.get("distributions", {})), answers=answers)
