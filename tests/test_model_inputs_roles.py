"""Parameter roles: every built-in parameter has one, initial weights and FLOP counts go by
role, and they are bit-identical to what the suffix-based code produced before roles existed
(the sha256 digests below were computed with that code, zoo-bench at commit da87615)."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pytest

from zoo.init import init_weights, with_new_head
from zoo.models import BUILTIN_MODELS, ROLES, ParamSpec, builtin_model
from zoo.models.flops import forward_flops, head_flops, train_step_flops
from zoo.models.spec import head_params

#: model, input shape, classes -> sha256 of init_weights(seed=3), of with_new_head(5 classes,
#: seed=11), forward FLOPs, head FLOPs, training FLOPs with a frozen backbone; computed before roles.
BEFORE_ROLES = {
    ("mlp", (8, 8, 1), 10): ("ebb56f13de65ea999102404a4863ea08f7682744b955c3f8594099c77d7acc85",
                             "37ca455e9461ceaf425f02e0a7685b69b54c3a193c8e0dd6e9cdf79c4e41ee2f", 34048, 1280, 35328),
    ("mlp", (9, 9, 3), 7): ("3f8cc3415f41c03a87d08c5131226e6b052158e0b7365b41767cd1f3970187ff",
                            "d65ac82fd50f692f45e731dd57843610218fe585e1914547280d8140c2a498a3", 79488, 896, 80384),
    ("cnn", (8, 8, 1), 10): ("95db2ad82b722711309e16865a12c33e6d79f846d7b593416612059b8ba4954e",
                             "b13bd026bee29a08495d260423a30c89941cf5a6986295bb227a9d2880ca6169", 756992, 1280, 758272),
    ("cnn", (9, 9, 3), 7): ("ecaf2d7955d445ab521322d2e7910d70a2cf273ab43458a8e738464d97929082",
                            "34cefbb6470f0cc6be6c89ab2b1d46a044b3baad435ba9c86a4227511f7b9d7a", 1222880, 896, 1223776),
    ("resnet20", (32, 32, 3), 10): ("ce83362f28c444e77c4e08cc62b5629fe450f91321a00f542b7a5b721ba1a408",
                                    "a6c6e9c3b313aa52c4595f57341baf82e3e7ff62ecf972facb5a3016d112c1fe",
                                    81626368, 1280, 81627648),
    ("resnet18", (64, 64, 3), 10): ("a6f78d0e470b23fcd6c35b3064614534803e5ba975bb0d307c1c075ba3082d3d",
                                    "4bcbcd0254a20ce8f075b248ac1660499a51ffbf5b50d8938c27c16f5f1d3303",
                                    296101888, 10240, 296112128),
    ("resnet50", (64, 64, 3), 10): ("3862fa26c876809c1f2858288d5b844f5afe845047175723001ec79250b45200",
                                    "e0b67a03c8bc5952e7dd99718d054f12e9fed39cecdb9ca890ff0e5736a5578a",
                                    667328512, 40960, 667369472),
    ("resnet50-keras", (64, 64, 3), 10): ("c7329767e169578c07cdff639178d72d989cc4902a43f687b013461fbe2bebf4",
                                          "0d5fdc19e7422ae82e0b670e06ca01061b69f2674844b23e8ef35fe152cd4c92",
                                          629579776, 40960, 629620736),
}


def digest(weights: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(weights):
        a = np.ascontiguousarray(weights[name])
        h.update(name.encode()); h.update(str(a.dtype).encode()); h.update(str(a.shape).encode()); h.update(a.tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("case", sorted(BEFORE_ROLES), ids=lambda c: f"{c[0]}-{'x'.join(map(str, c[1]))}")
def test_initial_weights_and_flops_by_role_are_bit_identical_to_before(case):
    name, shape, classes = case
    spec = builtin_model(name)
    weights = init_weights(spec, shape, classes, seed=3)
    expected = BEFORE_ROLES[case]
    assert digest(weights) == expected[0]
    assert digest(with_new_head(spec, weights, shape, 5, seed=11)) == expected[1]
    assert (forward_flops(spec, shape, classes), head_flops(spec, shape, classes),
            train_step_flops(spec, shape, classes, "backbone")) == expected[2:]


def test_every_built_in_parameter_declares_a_role_of_the_closed_set():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # no inferred (legacy) role anywhere
        for spec in BUILTIN_MODELS:
            params = spec.parameters((32, 32, 3), 10)
            assert {p.role for p in params} <= set(ROLES)
            assert all(p.trainable == (p.role not in ("bn_mean", "bn_var")) for p in params)


def test_a_param_spec_checks_its_role_and_a_spec_without_roles_still_works():
    with pytest.raises(ValueError, match="unknown role 'kernel'"):
        ParamSpec("fc.kernel", (3, 4), role="kernel")
    with pytest.raises(ValueError, match="has 4 dimensions"):
        ParamSpec("conv.kernel", (3, 4), role="conv_kernel")
    with pytest.raises(ValueError, match="trainable=False"):
        ParamSpec("bn.mean", (4,), role="bn_mean")
    with pytest.warns(DeprecationWarning, match="inferred 'conv_kernel'"):
        assert ParamSpec("c.kernel", (3, 3, 1, 4)).role == "conv_kernel"  # a contract-2 spec's naming
    with pytest.warns(DeprecationWarning):
        assert ParamSpec("bn.var", (4,), trainable=False).role == "bn_var"


def test_init_and_flops_never_read_names_a_head_called_otherwise_is_counted_by_role():
    table = ParamSpec("embed.table", (1000, 16), role="embedding")
    rng = np.random.default_rng(0)
    from zoo.init import init_param

    emb = init_param(table, rng)
    assert emb.dtype == np.float32 and abs(float(emb.std()) - 0.02) < 0.002  # not He uniform of a "kernel"
    depthwise = init_param(ParamSpec("dw.kernel", (3, 3, 8, 2), role="depthwise_kernel"), rng)
    assert float(np.abs(depthwise).max()) <= np.sqrt(6.0 / 9)  # fan-in kh * kw: one channel per output

    class TwoLayerHead(type(builtin_model("mlp"))):
        def parameters(self, input_shape, num_classes):
            return [ParamSpec("head.proj", (64, 32), role="dense_kernel"),
                    ParamSpec("head.proj_bias", (32,), role="bias"), *head_params(32, num_classes)]

    spec = TwoLayerHead(name="x", description="")
    assert head_flops(spec, (8, 8, 1), 10) == 2 * (64 * 32 + 32 * 10)
