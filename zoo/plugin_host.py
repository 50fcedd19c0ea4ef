"""Discover and load zoo plugins: entry points in the ``zoo`` group, one at a time.

This is the one entry-point walk: the host (``zoo bench`` and every other command, and each
cell's worker) and the conformance kit (:mod:`zoo.testing`) both load plugins through it, so the
kit finds a plugin exactly as the host would. It lives in ``zoo`` because ``zoo`` never imports
the host.

A plugin that fails to import is recorded with its name, distribution and traceback, and the
others still load (set ``ZOO_STRICT_PLUGINS=1`` to re-raise instead, for debugging).
``ZOO_DISABLE_PLUGIN_AUTOLOAD=1`` turns discovery off; ``ZOO_PLUGINS=mod1,mod2`` or ``zoo -p
MODULE`` loads modules explicitly, as pytest's ``-p`` does. ``ZOO_ALLOWED_PLUGINS=a,b`` or ``zoo
--plugins a,b`` is an allow-list: entry points whose name or distribution is not on it are never
imported (they are listed as not allowed), so untrusted code installed in the environment does
not run.
"""

from __future__ import annotations

import importlib
import os
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any, Iterable, Iterator

import pluggy

import zoo.builtin
from zoo import hookspecs

GROUP = "zoo"
AUTOLOAD_OFF_ENV = "ZOO_DISABLE_PLUGIN_AUTOLOAD"
EXPLICIT_ENV = "ZOO_PLUGINS"
STRICT_ENV = "ZOO_STRICT_PLUGINS"
ALLOW_ENV = "ZOO_ALLOWED_PLUGINS"


@dataclass(frozen=True)
class PluginOrigin:
    """Where a loaded plugin comes from."""

    name: str  # entry-point name or module name
    module: str  # importable module name, what a worker process imports
    distribution: str  # distribution name, or "(explicit)" / "(builtin)"
    version: str
    path: str  # file the module was loaded from


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded, and why."""

    name: str
    distribution: str
    error: str
    traceback: str


@dataclass
class PluginHost:
    """The pluggy manager plus what was loaded and what failed."""

    pm: pluggy.PluginManager
    origins: dict[str, PluginOrigin] = field(default_factory=dict)  # by module name
    failures: list[PluginFailure] = field(default_factory=list)
    not_allowed: list[PluginOrigin] = field(default_factory=list)  # found, but not on the allow-list

    def register_module(self, module: ModuleType, origin: PluginOrigin) -> None:
        self.pm.register(module, name=origin.name)
        self.origins[module.__name__] = origin

    def origin_of(self, plugin: object) -> PluginOrigin:
        module = getattr(plugin, "__name__", type(plugin).__module__)
        return self.origins.get(
            module, PluginOrigin(module, module, "(in-process)", "", getattr(plugin, "__file__", "") or "")
        )


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false", "no")


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    return pm


def _module_origin(module: ModuleType, name: str, distribution: str, version: str) -> PluginOrigin:
    return PluginOrigin(name, module.__name__, distribution, version, getattr(module, "__file__", "") or "")


def _load_entry_points(host: PluginHost, strict: bool, allowed: set[str] | None) -> None:
    seen = set()
    for ep in sorted(metadata.entry_points(group=GROUP), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist else "(unknown distribution)"
        version = ep.dist.version if ep.dist else ""
        if (ep.name, ep.value) in seen:  # the same distribution found twice on sys.path
            continue
        seen.add((ep.name, ep.value))
        if allowed is not None and not ({ep.name.lower(), dist.lower()} & allowed):
            host.not_allowed.append(PluginOrigin(ep.name, ep.value.split(":")[0], dist, version, ""))
            continue
        try:
            module = ep.load()
            host.register_module(module, _module_origin(module, ep.name, dist, version))
            host.pm.check_pending()
        except Exception as exc:
            if strict:
                raise
            _forget(host.pm, ep.name)
            host.failures.append(
                PluginFailure(ep.name, dist, f"{type(exc).__name__}: {exc}", traceback.format_exc())
            )


def _forget(pm: pluggy.PluginManager, name: str) -> None:
    plugin = pm.get_plugin(name)
    if plugin is not None:
        pm.unregister(plugin)


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def load_plugins(
    explicit: Iterable[str] = (), autoload: bool | None = None, allowed: Iterable[str] | None = None
) -> PluginHost:
    """Build the plugin host: built-ins, then entry points (unless disabled), then ``explicit``
    module names and those in ``ZOO_PLUGINS``. With an allow-list (``allowed`` plus
    ``ZOO_ALLOWED_PLUGINS``) nothing off it is imported, explicit modules included: an entry point
    must be named by its name or distribution, a module by its name or top-level package, so
    setting ``ZOO_PLUGINS`` cannot smuggle code past the list."""
    strict = _truthy(os.environ.get(STRICT_ENV))
    if autoload is None:
        autoload = not _truthy(os.environ.get(AUTOLOAD_OFF_ENV))
    allow = list(allowed or []) + _split(os.environ.get(ALLOW_ENV))
    host = PluginHost(new_plugin_manager())
    host.register_module(zoo.builtin, _module_origin(zoo.builtin, "builtin", "zoo-bench", zoo.__version__))
    if autoload:
        _load_entry_points(host, strict, {a.lower() for a in allow} if allow else None)
    allowed_names = {a.lower() for a in allow} if allow else None
    for name in dict.fromkeys(_split(os.environ.get(EXPLICIT_ENV)) + list(explicit)):
        if allowed_names is not None and not ({name.lower(), name.split(".")[0].lower()} & allowed_names):
            host.not_allowed.append(PluginOrigin(name, name, "(explicit)", "", ""))
            continue
        load_module_plugin(host, name, strict=strict)
    return host


def load_module_plugin(host: PluginHost, module_name: str, strict: bool = False) -> None:
    """Import ``module_name`` and register it, unless it is registered already."""
    if module_name in host.origins:
        return
    try:
        module = importlib.import_module(module_name)
        host.register_module(module, _module_origin(module, module_name, "(explicit)", ""))
        host.pm.check_pending()
    except Exception as exc:
        if strict:
            raise
        _forget(host.pm, module_name)
        host.origins.pop(module_name, None)
        host.failures.append(
            PluginFailure(module_name, "(explicit)", f"{type(exc).__name__}: {exc}", traceback.format_exc())
        )


def import_object(target: str) -> Any:
    """The object a ``"module:attribute"`` reference names (the entry-point syntax), imported
    now: how plugins refer to heavy code (a framework's model builders) without importing it at
    plan time."""
    module, sep, name = target.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"{target!r} is not a 'module:attribute' reference")
    return getattr(importlib.import_module(module), name)


def collect(host: PluginHost, hook_name: str) -> Iterator[tuple[object, PluginOrigin]]:
    """Call one registration hook (``zoo_frameworks``, ``zoo_models``, ...) plugin by plugin and
    yield each returned item with its plugin's origin. A plugin whose hook raises is recorded in
    ``host.failures`` with its name and distribution, and the others still count."""
    hook = getattr(host.pm.hook, hook_name)
    for impl in hook.get_hookimpls():
        origin = host.origin_of(impl.plugin)
        try:
            items = impl.function() or []
        except Exception as exc:
            host.failures.append(
                PluginFailure(origin.name, origin.distribution, f"{hook_name} raised {type(exc).__name__}: {exc}",
                              traceback.format_exc())
            )
            continue
        for item in items:
            yield item, origin


def worker_host(modules: Iterable[str]) -> PluginHost:
    """The plugin host of a worker process: built-ins plus exactly ``modules``, no discovery, so
    an unrelated broken plugin cannot affect a cell. Import failures raise."""
    host = PluginHost(new_plugin_manager())
    host.register_module(zoo.builtin, _module_origin(zoo.builtin, "builtin", "zoo-bench", zoo.__version__))
    for name in modules:
        if name not in host.origins:
            module = importlib.import_module(name)
            host.register_module(module, _module_origin(module, name, "(worker)", ""))
    return host
