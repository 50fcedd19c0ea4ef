"""zoo: the public package of zoo-bench.

Plugin authors import from here and from nothing else of zoo-bench:

* :data:`hookimpl` marks a plugin's hook implementations (see :mod:`zoo.hookspecs`);
* :class:`zoo.contract.Framework` is the adapter a framework plugin implements;
* :mod:`zoo.models` holds the framework-neutral model specs and their NumPy reference;
* :mod:`zoo.tasks` holds the classification tasks;
* :mod:`zoo.checkpoints` reads and writes canonical safetensors checkpoints.

Importing this package never imports a deep-learning framework.
"""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

#: The version of the framework-adapter contract this ``zoo`` implements. An adapter
#: declares the version it was written against; the host refuses a newer one.
#: 1: the first contract. 2: ``fine_tune`` calls ``meter.end_epoch(model)`` after each epoch
#: (the host requires it from version-2 adapters and measures time-to-accuracy with it), and
#: ``meter.step`` yields a ``sync`` flag (version-1 adapters ignore it and stay correct).
#: 3: models declare their inputs (``ModelSpec.inputs``, :class:`zoo.models.inputs.InputSpec`)
#: and each parameter's role (``ParamSpec.role``; layouts convert by role); ``TrainData`` and
#: ``EvalData`` carry named inputs (a single-input model's batches are still plain arrays);
#: ``load_pretrained`` also receives ``inputs``, but only adapters declaring 3 or later get it
#: (:func:`zoo.contract.load_kwargs`), so version-2 adapters run unchanged on image models.
CONTRACT_VERSION = 3

#: Marker for hook implementations, e.g. ``@hookimpl def zoo_frameworks(): ...``.
hookimpl = pluggy.HookimplMarker("zoo")

__all__ = ["CONTRACT_VERSION", "__version__", "hookimpl"]
