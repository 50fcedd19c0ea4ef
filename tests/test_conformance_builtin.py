"""The built-in plugins pass the same conformance suite a third-party plugin runs: `zoo
check-plugin NAME`, in a fresh process per framework (as the host runs each cell), every check."""

from __future__ import annotations

import json

import pytest

from conftest import needs_plugin, run_zoo
from zoo.testing import CHECKS

BUILTIN = {"torch": "zoo-torch", "tf": "zoo-tf", "jax": "zoo-jax"}


@pytest.mark.slow
@pytest.mark.parametrize("framework", [pytest.param(name, marks=needs_plugin(dist)) for name, dist in BUILTIN.items()])
def test_builtin_plugin_conforms(framework):
    proc = run_zoo("check-plugin", framework, "--json", env={"ZOO_STRICT_PLUGINS": "0"})
    assert proc.stdout.strip(), proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    failed = [f"{r['status'].upper()} {r['check']} [{r['subject']}]: {r['message']}\n{r['detail']}"
              for r in report["results"] if r["status"] not in ("passed", "not applicable")]
    assert not failed and proc.returncode == 0, "\n".join(failed) or proc.stderr[-3000:]
    assert report["origin"].startswith(f"{BUILTIN[framework]} ")
    assert list(report["checks"]) == list(CHECKS) and set(report["checks"].values()) == {"passed"}
    assert {"mlp", "cnn"} <= set(report["models"])
