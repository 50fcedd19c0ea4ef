"""zoo-bench's own models and tasks, registered through the same hooks as any plugin.

The EfficientNet-Lite family and its real-image tasks, and the BERT family with its text tasks,
are registered here, beside (not inside)
``zoo.models.BUILTIN_MODELS`` / ``zoo.tasks.BUILTIN_TASKS``: tests over those tuples assume a head
of exactly ``head.kernel``/``head.bias``, while the Lite models carry the seed recipe's hidden
``Dense(1024)`` head (``head.fc1.*``), and those tests feed images, while a BERT model takes
token ids and a mask. The 224 px synthetic ImageNet-shaped tasks (``zoo.tasks.synthetic``) are
here too: a test that loads every task in ``BUILTIN_TASKS`` should not make 2.4 GB of images."""

from __future__ import annotations

from zoo import hookimpl
from zoo.models import BERT_MODELS, BUILTIN_MODELS, EFFICIENTNET_LITE_MODELS
from zoo.tasks import BUILTIN_TASKS
from zoo.tasks.real_images import REAL_IMAGE_TASKS
from zoo.tasks.synthetic import SYNTHETIC_TASKS
from zoo.tasks.text import TEXT_TASKS


@hookimpl
def zoo_models():
    return list(BUILTIN_MODELS) + list(EFFICIENTNET_LITE_MODELS) + list(BERT_MODELS)


@hookimpl
def zoo_tasks():
    return list(BUILTIN_TASKS) + list(REAL_IMAGE_TASKS) + list(TEXT_TASKS) + list(SYNTHETIC_TASKS)
