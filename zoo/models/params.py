"""One parameter of a model (:class:`ParamSpec`) and its *role*: what the array is for.

Everything that treats parameters differently goes by role, never by name suffix or array
rank: the NumPy initialisers (:mod:`zoo.init`), the FLOP counts (:mod:`zoo.models.flops`) and
every framework's layout conversion (torch transposes a dense kernel and permutes a conv kernel;
an embedding table, also 2-D, is used as is). The roles form a closed set, :data:`ROLES`:

==================  ==========================  ==========================================
role                canonical layout            what it is
==================  ==========================  ==========================================
dense_kernel        ``[in, out]``               ``x @ kernel`` (torch ``Linear.weight`` is
                                                ``[out, in]``)
conv_kernel         ``[kh, kw, in, out]`` HWIO  2-D convolution (torch: OIHW)
depthwise_kernel    ``[kh, kw, channels, mult]``  depthwise convolution, output channel
                                                ``c * mult + m`` (Keras's layout; torch:
                                                ``[channels * mult, 1, kh, kw]``)
bias                ``[out]``                   added after a dense layer or convolution
embedding           ``[rows, dim]``             row ``i`` is the vector of id ``i`` (token or
                                                position); no framework transposes it
norm_scale          ``[channels]``              BatchNorm/LayerNorm scale (gamma)
norm_bias           ``[channels]``              BatchNorm/LayerNorm shift (beta)
bn_mean             ``[channels]``              BatchNorm running mean: state, not trained
bn_var              ``[channels]``              BatchNorm running variance: state, not trained
==================  ==========================  ==========================================
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Mapping

HEAD_PREFIX = "head."


@dataclass(frozen=True)
class Role:
    """What a role fixes: the rank of the array and a one-line description."""

    rank: int
    description: str


#: The closed set of parameter roles (module docstring).
ROLES: Mapping[str, Role] = {
    "dense_kernel": Role(2, "dense kernel [in, out]"),
    "conv_kernel": Role(4, "conv kernel [kh, kw, in, out] (HWIO)"),
    "depthwise_kernel": Role(4, "depthwise conv kernel [kh, kw, channels, multiplier]"),
    "bias": Role(1, "bias of a dense or conv layer [out]"),
    "embedding": Role(2, "embedding table [rows, dim]"),
    "norm_scale": Role(1, "normalisation scale (gamma) [channels]"),
    "norm_bias": Role(1, "normalisation shift (beta) [channels]"),
    "bn_mean": Role(1, "BatchNorm running mean [channels] (state)"),
    "bn_var": Role(1, "BatchNorm running variance [channels] (state)"),
}
#: Roles of non-trainable state: loaded, exported and checkpointed, never given to an optimiser.
STATE_ROLES = frozenset({"bn_mean", "bn_var"})
#: Roles whose arrays are kernels of a layer with a fan-in (initialised randomly, counted in FLOPs).
KERNEL_ROLES = frozenset({"dense_kernel", "conv_kernel", "depthwise_kernel"})


@dataclass(frozen=True)
class ParamSpec:
    """One parameter in the canonical layout of its ``role`` (module docstring).

    ``trainable=False`` marks state that no optimiser touches (BatchNorm running mean and
    variance, whose roles require it); it is still loaded, exported and checkpointed like any
    parameter. Specs written before roles existed may leave ``role`` out: it is then inferred
    once, here, from contract-2 canonical naming (:func:`legacy_role`), with a
    ``DeprecationWarning``; set it explicitly.
    """

    name: str
    shape: tuple[int, ...]
    trainable: bool = True
    role: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if not self.role:
            role = legacy_role(self.name, self.shape, self.trainable)
            warnings.warn(f"ParamSpec {self.name!r} has no role; inferred {role!r} from its name and shape. "
                          f"Set role= to one of {', '.join(ROLES)}", DeprecationWarning, stacklevel=3)
            object.__setattr__(self, "role", role)
        if self.role not in ROLES:
            raise ValueError(f"ParamSpec {self.name!r}: unknown role {self.role!r}; use one of {', '.join(ROLES)}")
        rank = ROLES[self.role].rank
        if len(self.shape) != rank:
            raise ValueError(f"ParamSpec {self.name!r}: a {ROLES[self.role].description} has {rank} dimensions, "
                             f"got shape {self.shape}")
        if self.role in STATE_ROLES and self.trainable:
            raise ValueError(f"ParamSpec {self.name!r}: role {self.role!r} is state; declare it trainable=False")

    @property
    def is_head(self) -> bool:
        return self.name.startswith(HEAD_PREFIX)

    @property
    def is_state(self) -> bool:
        """Non-trainable state by role (BatchNorm running statistics)."""
        return self.role in STATE_ROLES

    @property
    def layer(self) -> str:
        """The layer the parameter belongs to: ``layer1.0.bn2.scale`` -> ``layer1.0.bn2``."""
        return self.name.rsplit(".", 1)[0]


def legacy_role(name: str, shape: tuple[int, ...], trainable: bool = True) -> str:
    """The role a contract-2 spec meant by its canonical naming (``.kernel`` 2-D dense, 4-D
    conv; ``.bias``; BatchNorm ``.scale``, ``.mean``, ``.var``). Only :class:`ParamSpec` calls
    it, for specs that set no role; nothing else in zoo looks at suffixes."""
    suffix = name.rsplit(".", 1)[-1]
    by_suffix = {"bias": "bias", "scale": "norm_scale", "mean": "bn_mean", "var": "bn_var"}
    if suffix in by_suffix and len(shape) == 1:
        if trainable and suffix in ("mean", "var"):  # not BatchNorm state: initialised as before
            return "bias" if suffix == "mean" else "norm_scale"
        return by_suffix[suffix]
    if len(shape) == 2:
        return "dense_kernel"
    if len(shape) == 4:
        return "conv_kernel"
    raise ValueError(f"ParamSpec {name!r} with shape {shape}: cannot infer its role; set role= to one of "
                     f"{', '.join(ROLES)}")
