"""Plugin discovery: entry points one at a time, failures reported by name, explicit loading."""

import types

import pytest

import zoo
import zoo.builtin
from zoo.contract import Framework, Support
from zoo.models import MLPSpec

from zoo.plugin_host import load_plugins
from harness.plugins.registry import UnknownName, build_registry

DUMMY_FRAMEWORK = '''
import zoo
from zoo.contract import Framework, Support

class Dummy(Framework):
    name = "{name}"
    aliases = ("dum",)
    contract_version = {version}
    def supports(self, spec, device, precision): return Support.yes()
    def prepare(self, runtime): pass
    def info(self): raise NotImplementedError
    def load_pretrained(self, **kw): raise NotImplementedError
    def fine_tune(self, model, data, config, meter): raise NotImplementedError
    def evaluate(self, model, data, meter): raise NotImplementedError
    def export_weights(self, model): raise NotImplementedError

@zoo.hookimpl
def zoo_frameworks():
    return [Dummy()]
'''


def test_builtin_models_and_tasks_are_registered_without_autoload():
    reg = build_registry(load_plugins(autoload=False))
    assert {"mlp", "cnn"} <= set(reg.models)
    assert {"digits", "digits-10shot", "digits-0to4"} <= set(reg.tasks)
    assert reg.frameworks == {}


def test_plugin_registered_in_process_is_discovered():
    host = load_plugins(autoload=False)

    class InProcess(Framework):
        name = "inproc"
        def supports(self, spec, device, precision): return Support.yes()
        def prepare(self, runtime): pass
        def info(self): ...
        def load_pretrained(self, **kw): ...
        def fine_tune(self, model, data, config, meter): ...
        def evaluate(self, model, data, meter): ...
        def export_weights(self, model): ...

    plugin = types.SimpleNamespace(
        zoo_frameworks=zoo.hookimpl(lambda: [InProcess()]),
        zoo_models=zoo.hookimpl(lambda: [MLPSpec(name="tiny-mlp", description="", hidden=(4,))]),
    )
    host.pm.register(plugin, name="inproc-plugin")
    try:
        reg = build_registry(host)
        assert reg.framework("inproc").item.name == "inproc"
        assert reg.model("tiny-mlp").item.hidden == (4,)
    finally:
        host.pm.unregister(plugin)


def test_entry_point_plugin_is_discovered_with_its_distribution(fake_distribution):
    fake_distribution("zoo-dummy", {"dummy": "dummy_plugin"},
                      {"dummy_plugin": DUMMY_FRAMEWORK.format(name="dummy", version=1)})
    host = load_plugins(autoload=True)
    reg = build_registry(host)
    provided = reg.framework("dum")  # alias
    assert provided.item.name == "dummy"
    assert provided.origin.distribution == "zoo-dummy" and provided.origin.version == "1.0"


def test_plugin_that_raises_at_import_is_reported_and_others_still_load(fake_distribution):
    fake_distribution("zoo-broken", {"broken": "broken_plugin"},
                      {"broken_plugin": "raise ImportError('needs libfoo.so')\n"})
    fake_distribution("zoo-dummy", {"dummy": "dummy_plugin"},
                      {"dummy_plugin": DUMMY_FRAMEWORK.format(name="dummy", version=1)})
    reg = build_registry(load_plugins(autoload=True))
    assert "dummy" in reg.frameworks
    (failure,) = [p for p in reg.problems if p.name == "broken"]
    assert failure.distribution == "zoo-broken"
    assert "ImportError: needs libfoo.so" in failure.error
    assert "broken_plugin.py" in failure.traceback


def test_strict_mode_re_raises(fake_distribution, monkeypatch):
    fake_distribution("zoo-broken", {"broken": "broken_plugin"}, {"broken_plugin": "raise ImportError('x')\n"})
    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "1")
    with pytest.raises(ImportError):
        load_plugins(autoload=True)


def test_autoload_can_be_disabled_and_modules_loaded_explicitly(fake_distribution, monkeypatch):
    fake_distribution("zoo-dummy", {"dummy": "dummy_plugin"},
                      {"dummy_plugin": DUMMY_FRAMEWORK.format(name="dummy", version=1)})
    monkeypatch.setenv("ZOO_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "dummy" not in build_registry(load_plugins()).frameworks
    monkeypatch.setenv("ZOO_PLUGINS", "dummy_plugin")
    assert "dummy" in build_registry(load_plugins()).frameworks


def test_newer_contract_version_is_refused_naming_the_distribution(fake_distribution):
    fake_distribution("zoo-future", {"future": "future_plugin"},
                      {"future_plugin": DUMMY_FRAMEWORK.format(name="future", version=zoo.CONTRACT_VERSION + 1)})
    reg = build_registry(load_plugins(autoload=True))
    assert "future" not in reg.frameworks
    assert any("zoo-future" in p.distribution and "contract version" in p.error for p in reg.problems)


def test_duplicate_names_name_both_distributions(fake_distribution):
    fake_distribution("zoo-one", {"one": "one_plugin"}, {"one_plugin": DUMMY_FRAMEWORK.format(name="same", version=1)})
    fake_distribution("zoo-two", {"two": "two_plugin"}, {"two_plugin": DUMMY_FRAMEWORK.format(name="same", version=1)})
    reg = build_registry(load_plugins(autoload=True))
    assert "same" in reg.frameworks
    assert any("zoo-one" in p.error and "zoo-two" in p.error for p in reg.problems)


def test_unknown_name_lists_installed_and_suggests():
    reg = build_registry(load_plugins(autoload=False))
    with pytest.raises(UnknownName, match=r"unknown model 'cnnn'; installed: .*cnn, .*mlp, resnet18, .* \(did you mean 'cnn'\?\)"):
        reg.model("cnnn")
    with pytest.raises(UnknownName, match="unknown task"):
        reg.task("imagenet")


def test_registration_hook_that_raises_is_reported():
    host = load_plugins(autoload=False)

    def bad():
        raise RuntimeError("boom")

    plugin = types.SimpleNamespace(zoo_tasks=zoo.hookimpl(bad))
    host.pm.register(plugin, name="bad-tasks")
    try:
        reg = build_registry(host)
        assert set(reg.tasks) == {t.name for t in zoo.builtin.zoo_tasks()}
        assert any("zoo_tasks raised RuntimeError: boom" in p.error for p in reg.problems)
    finally:
        host.pm.unregister(plugin)
