"""What zoo-jax builds, by model family: read by the adapter (``supports``, ``load_pretrained``)
and by :mod:`zoo_jax.modules`. Importing it imports no jax."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from zoo.models import BertSpec, CNNSpec, EfficientNetLiteSpec, MLPSpec, ResNetSpec
from zoo.plugin_host import import_object

#: Model family -> the function that builds its Flax module, ``fn(spec, num_classes, dtype,
#: train_bn)``, as "module:function" (imported only when a model is built, so planning never
#: imports jax). The one list of what zoo-jax builds: ``supports`` and ``load_pretrained`` read it.
FAMILIES: Mapping[str, str] = {
    MLPSpec.family: "zoo_jax.modules:mlp",
    CNNSpec.family: "zoo_jax.modules:cnn",
    ResNetSpec.family: "zoo_jax.resnet:resnet",
    EfficientNetLiteSpec.family: "zoo_jax.efficientnet:efficientnet_lite",
    BertSpec.family: "zoo_jax.bert:bert",
}


def builder(family: str) -> Callable[..., Any]:
    """The module builder of ``family``, from :data:`FAMILIES`."""
    return import_object(FAMILIES[family])
