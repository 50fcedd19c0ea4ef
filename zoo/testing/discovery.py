"""Discovery checks: the framework is found the way ``zoo bench`` finds it, and importing its
plugin does not import the framework.

They load plugins through :mod:`zoo.plugin_host`, the same entry-point walk the host uses, so a
pass means ``zoo bench -f NAME`` sees the plugin. Nothing here imports the host (``harness``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from typing import Sequence

import zoo
from zoo.contract import Framework
from zoo.models.spec import ModelSpec
from zoo.plugin_host import GROUP, PluginOrigin, collect, load_plugins
from zoo.testing.context import Context, Failed, run_subject
from zoo.testing.report import FAILED, PASSED, CheckResult

#: Frameworks whose import takes seconds; none may be imported by loading a plugin.
HEAVY_MODULES = frozenset({
    "torch", "tensorflow", "keras", "jax", "jaxlib", "flax", "optax", "onnxruntime", "tensorrt", "paddle",
    "mxnet", "mindspore", "cupy", "openvino", "tvm", "tinygrad", "mlx",
})


@dataclass
class Discovery:
    """What the host's loader found for one framework name."""

    adapter: Framework | None = None
    models: Sequence[ModelSpec] = ()
    own_models: Sequence[str] = ()  # models registered by the framework's own distribution
    module: str = ""  # the plugin module a worker imports
    entry_point: str = ""
    distribution: str = ""
    version: str = ""
    result: CheckResult | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def origin(self) -> str:
        if not self.adapter:
            return "not found"
        return f"{self.distribution} {self.version}, entry point {self.entry_point} -> {self.module}".strip()


def _find(name: str, frameworks: list[tuple[Framework, PluginOrigin]]) -> tuple[Framework, PluginOrigin] | None:
    """The first registration of ``name`` or one of its aliases (case-insensitive), as the host
    resolves it: the first registration wins."""
    key = name.strip().lower()
    for adapter, origin in frameworks:
        if adapter.name == key:
            return adapter, origin
    for adapter, origin in frameworks:
        if key in {a.lower() for a in adapter.aliases}:
            return adapter, origin
    return None


def discover(name: str, explicit: Sequence[str] = ()) -> Discovery:
    """Load every plugin as ``zoo bench`` does and look ``name`` (or an alias) up."""
    host = load_plugins(explicit=explicit)
    frameworks = [(a, o) for a, o in collect(host, "zoo_frameworks") if isinstance(a, Framework) and a.name]
    models = [(m, o) for m, o in collect(host, "zoo_models") if isinstance(m, ModelSpec)]
    found = Discovery(problems=[f"{p.name} ({p.distribution}): {p.error}" for p in host.failures])
    hit = _find(name, frameworks)
    if hit is None:
        installed = ", ".join(sorted({a.name for a, _ in frameworks})) or "none"
        broken = f" Plugins that failed to load: {'; '.join(found.problems)}." if found.problems else ""
        found.result = CheckResult("discovery", "", FAILED, (
            f"unknown framework {name!r}; installed: {installed}. Declare the plugin module under the entry-point "
            f"group {GROUP!r} in pyproject.toml "
            f"([project.entry-points.{GROUP}] NAME = \"your_module\"), install it (pip install -e .), and return "
            f"the adapter from its @zoo.hookimpl zoo_frameworks().{broken}"))
        return found
    adapter, origin = hit
    mine = [p.error for p in host.failures if p.distribution == origin.distribution]
    if adapter.contract_version > zoo.CONTRACT_VERSION:
        mine.append(f"framework {adapter.name!r} implements contract version {adapter.contract_version}, but this "
                    f"zoo-bench understands up to {zoo.CONTRACT_VERSION}")
    others = sorted({o.distribution for a, o in frameworks if a.name == adapter.name and o != origin})
    if others:
        mine.append(f"framework {adapter.name!r} is also provided by {', '.join(others)}")
    found.adapter, found.module = adapter, origin.module
    found.entry_point, found.distribution, found.version = origin.name, origin.distribution, origin.version
    found.models = [m for m, _ in models]
    found.own_models = [m.name for m, o in models if o.distribution == origin.distribution]
    provided_name = adapter.name
    if origin.distribution.startswith("("):
        found.result = CheckResult("discovery", "", FAILED, (
            f"framework {provided_name!r} comes from module {origin.module}, loaded explicitly "
            f"({origin.distribution}: -p or ZOO_PLUGINS), not from an installed distribution: `zoo bench` elsewhere "
            f"would not find it. Declare [project.entry-points.{GROUP}] in pyproject.toml and pip install -e ."))
    elif mine:
        found.result = CheckResult("discovery", "", FAILED, "the host reports problems with "
                                   f"{origin.distribution}: " + "; ".join(mine))
    else:
        alias = f" (as alias {name!r})" if name.lower() != provided_name else ""
        found.result = CheckResult("discovery", "", PASSED, (
            f"found{alias} through entry point {origin.name!r} in group {GROUP!r}: module {origin.module} of "
            f"{origin.distribution} {origin.version}; contract version {adapter.contract_version}"))
    return found


#: Run in a fresh interpreter: import the plugin module as a worker does, plan every model, and
#: print the top-level modules that this imported.
_LAZY_SCRIPT = """
import json, sys
from zoo.plugin_host import collect, worker_host
from zoo.contract import Runtime
before = set(sys.modules)
host = worker_host([sys.argv[1]])
adapter = next(a for a, _ in collect(host, "zoo_frameworks") if getattr(a, "name", "") == sys.argv[2])
for spec, _ in collect(host, "zoo_models"):
    adapter.supports(spec, "cpu", "fp32")
adapter.subprocess_env(Runtime("cpu", "fp32", 1, 0))
print(json.dumps(sorted({m.split(".")[0] for m in set(sys.modules) - before})))
"""


def framework_modules(packages: Sequence[str]) -> set[str]:
    """Top-level import names of the distributions in ``packages`` (plus the usual heavy ones)."""
    wanted = {p.lower().replace("_", "-") for p in packages}
    names = set(HEAVY_MODULES)
    for module, dists in metadata.packages_distributions().items():
        if any(d.lower().replace("_", "-") in wanted for d in dists):
            names.add(module)
    return names


def check_lazy_import(ctx: Context, module: str) -> list[CheckResult]:
    def body() -> str:
        proc = subprocess.run([sys.executable, "-c", _LAZY_SCRIPT, module, ctx.adapter.name], capture_output=True,
                              text=True, timeout=300, env={**os.environ, "ZOO_DISABLE_PLUGIN_AUTOLOAD": "1"})
        if proc.returncode != 0:
            raise Failed(f"importing {module} in a fresh process failed: {proc.stderr.strip()[-1500:]}")
        imported = set(json.loads(proc.stdout.strip().splitlines()[-1]))
        heavy = sorted(imported & framework_modules(ctx.adapter.packages))
        if heavy:
            raise Failed(f"importing {module} and planning with it (supports, subprocess_env) imported "
                         f"{', '.join(heavy)}: the zoo command imports every plugin to list and plan, so import "
                         "the framework inside the adapter's methods (prepare, load_pretrained, ...)")
        return f"importing {module} and planning imported no framework module"

    return [run_subject(ctx, "lazy-import", "", body)]
