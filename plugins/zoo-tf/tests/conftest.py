"""TensorFlow's process-wide settings for the zoo-tf tests, applied before any test uses it.

TensorFlow takes its thread pools only before its runtime starts, and ``prepare`` refuses other
settings afterwards. Run on their own, these tests share one process, so the first test that
touches TensorFlow without ``prepare`` (the adapter tests use an unprepared ``TFFramework``) fixed
TensorFlow's defaults, and the BERT and EfficientNet fixtures' ``prepare(threads=2)`` then failed.
Preparing once here, with the settings those fixtures ask for, makes the order irrelevant. The
subprocess tests (test_tf_plugin.py) start their own interpreters and are unaffected."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def tensorflow_prepared():
    try:
        from zoo.contract import Runtime
        from zoo_tf.adapter import TFFramework

        TFFramework().prepare(Runtime("cpu", "fp32", threads=2, seed=0))
    except ImportError:
        pass  # no TensorFlow: the test modules skip themselves
    except RuntimeError:
        pass  # TensorFlow already started in this process (a whole-suite run): its settings stand
    yield
