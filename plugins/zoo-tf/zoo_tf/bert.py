"""The zoo's BERT encoders (:class:`zoo.models.BertSpec`, MiniLM-L6) as a Keras functional graph.

A native Keras implementation of the forward pass :mod:`zoo.models.bert` specifies: plain
``Embedding``, ``Dense`` and ``LayerNormalization`` layers and an explicit, head-vectorised
attention (no ``keras.layers.MultiHeadAttention``, whose per-head kernels ``[H, heads, d]`` are
not the canonical layout). Every layer with parameters is a top-level layer named by its
canonical prefix, so :func:`zoo_tf.modules.canonical_variables` finds each parameter by name and
role (:data:`zoo_tf.modules.ROLE_ATTRIBUTES`):

* ``embeddings.word``: a ``keras.layers.Embedding`` (``embeddings [V, H]``) on the token ids;
* ``embeddings.position`` and ``embeddings.token_type``: :class:`TableRows`, a table (its
  ``embeddings`` variable, the whole ``[P, H]`` / ``[2, H]``) read as its rows ``0..L-1`` / its
  row 0 and broadcast over the batch (no gather, and a dense gradient);
* ``embeddings.norm``, ``layers.{i}.attention_norm``, ``layers.{i}.ffn_norm``: Keras
  ``LayerNormalization`` (``gamma``/``beta``) with ``epsilon=spec.ln_eps`` (1e-12); on the
  TensorFlow backend its variance is ``tf.nn.moments``' mean of squared differences (two-pass,
  not ``E[x^2] - E[x]^2``), in float32;
* ``layers.{i}.attention.{query,key,value,output}``, ``layers.{i}.ffn.{intermediate,output}``:
  ``Dense`` layers (``kernel [in, out]``, ``bias``) of the backbone's dtype policy;
* :class:`SelfAttention` (no weights; named ``layers.{i}.attention.core``): heads split by
  reshape/transpose to ``(n, heads, L, d)``, two batched matmuls over all heads at once,
  ``scores / sqrt(d) + (1 - mask) * MASK_BIAS`` (the additive bias is computed once per batch,
  ``(n, 1, 1, L)``, shared by every layer), softmax over the keys in float32;
* GELU is ``keras.activations.gelu(approximate=False)``, the exact erf form, in float32;
* pooling ``mean``: ``sum(h * mask) / max(sum(mask), 1e-9)``; ``cls``: ``h[:, 0]``; float32.
  :func:`zoo_tf.modules.build_model` adds the float32 ``Dense`` ``head``.

No dropout (the zoo fine-tunes deterministically). The graph has static shapes from the
declared inputs (``(batch, L)`` int32 ``tokens`` and ``mask``), so it traces under the adapter's
fixed-signature ``tf.function`` and under ``jit_compile=True`` (variant ``xla``) alike.

Precision ``bf16`` (the spec's rule): the six encoder ``Dense`` layers of each layer have the
``mixed_bfloat16`` policy -- float32 variables read as bfloat16, matmul and bias add in
bfloat16 -- and their outputs are cast to float32 at once; the attention's ``q k^T`` and
``softmax v`` take bfloat16 operands and their bfloat16 results are cast to float32 at once.
The embedding sum, LayerNorms, the scaling and mask bias, softmax, GELU, residual additions,
pooling and head are float32. The ``graph`` variant's bf16 logits equal a NumPy emulation of
that rule (bfloat16 rounding at exactly those points) to 4e-7; XLA may fuse some of the
conversions away, so its bf16 logits differ slightly (same error against the reference).

Measured against the float64 reference (tests/test_tf_bert.py), fp32: max |logit error|
6e-7 .. 1.3e-6 on the tiny random model (logits ~3), 7.4e-7 on the real MiniLM-L6 features
(~0.86) at L=16. bf16: max |error| / max |logit| 7.0e-3 (mean) and 8.7e-3 (cls) on the tiny
model at L=16, 8.1e-3 on the real MiniLM features.
"""

from __future__ import annotations

import math

from zoo.models.bert import MASK_BIAS, MIN_TOKENS, BertSpec
from zoo_tf.modules import BACKBONE_POLICY, DTYPE, keras  # keras, on the TensorFlow backend

layers, ops = keras.layers, keras.ops


class TableRows(layers.Layer):
    """An embedding table, the variable ``embeddings [rows, dim]``, read as its first rows:
    rows ``0..L-1`` for a ``(batch, L)`` input (positions), or only row 0 (``first_only``: token
    type 0 at every position). Returns ``(1, L or 1, dim)`` float32, to broadcast-add."""

    def __init__(self, rows: int, dim: int, first_only: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.rows, self.dim, self.first_only = rows, dim, first_only

    def build(self, input_shape):
        self.embeddings = self.add_weight(name="embeddings", shape=(self.rows, self.dim), initializer="zeros")

    def call(self, tokens):
        length = 1 if self.first_only else tokens.shape[1]  # static: the declared input length
        return ops.expand_dims(ops.convert_to_tensor(self.embeddings)[:length], 0)

    def compute_output_shape(self, input_shape):
        return (1, 1 if self.first_only else input_shape[1], self.dim)


class SelfAttention(layers.Layer):
    """Multi-head scaled dot-product attention on already projected ``q, k, v`` ``(n, L, H)``
    and the additive key bias ``(n, 1, 1, L)``; returns the heads' context concatenated back to
    ``(n, L, H)`` in float32. The two batched matmuls take ``matmul_dtype`` operands (bfloat16
    at precision bf16) and their results are cast to float32 at once; the rest is float32."""

    def __init__(self, heads: int, matmul_dtype: str = DTYPE, **kwargs):
        super().__init__(dtype=DTYPE, **kwargs)
        self.heads, self.matmul_dtype = heads, matmul_dtype

    def _matmul(self, a, b):
        return ops.cast(ops.matmul(ops.cast(a, self.matmul_dtype), ops.cast(b, self.matmul_dtype)), DTYPE)

    def call(self, q, k, v, bias):
        length, hidden = q.shape[1], q.shape[2]
        d = hidden // self.heads

        def split(t):  # (n, L, H) -> (n, heads, L, d)
            return ops.transpose(ops.reshape(t, (-1, length, self.heads, d)), (0, 2, 1, 3))

        q, k, v = split(q), split(k), split(v)
        scores = self._matmul(q, ops.transpose(k, (0, 1, 3, 2))) / math.sqrt(d) + bias  # (n, heads, L, L)
        context = self._matmul(ops.softmax(scores, axis=-1), v)  # (n, heads, L, d)
        return ops.reshape(ops.transpose(context, (0, 2, 1, 3)), (-1, length, hidden))

    def compute_output_shape(self, q_shape, k_shape=None, v_shape=None, bias_shape=None):
        return tuple(q_shape)


def _dense(units: int, name: str, policy: str, h):
    """A backbone ``Dense`` (matmul + bias at ``policy``), its output cast to float32 at once."""
    return ops.cast(layers.Dense(units, dtype=policy, name=name)(h), DTYPE)


def _norm(spec: BertSpec, name: str, h):
    return layers.LayerNormalization(axis=-1, epsilon=spec.ln_eps, dtype=DTYPE, name=name)(h)


def bert_pooled(spec: BertSpec, x: dict, backbone: str) -> keras.KerasTensor:
    """The encoder of ``spec`` on ``x = {"tokens", "mask"}`` (int32 ``(batch, L)``), with the
    backbone's dense layers at dtype policy ``backbone``, and its float32 pooled features
    ``(batch, H)``: what the classifier sees (the builder :data:`zoo_tf.adapter.FAMILIES` names
    for the bert family)."""
    tokens, mask = x["tokens"], x["mask"]
    matmul_dtype = "bfloat16" if backbone == BACKBONE_POLICY["bf16"] else DTYPE
    h_size = spec.hidden

    word = layers.Embedding(spec.vocab_size, h_size, dtype=DTYPE, name="embeddings.word")(tokens)
    position = TableRows(spec.max_positions, h_size, dtype=DTYPE, name="embeddings.position")(tokens)
    token_type = TableRows(spec.type_vocab_size, h_size, first_only=True, dtype=DTYPE,
                           name="embeddings.token_type")(tokens)
    h = _norm(spec, "embeddings.norm", word + position + token_type)

    real = ops.cast(mask, DTYPE)  # (n, L), 1 for a real token
    bias = ops.reshape((1.0 - real) * MASK_BIAS, (-1, 1, 1, real.shape[1]))  # per key, every head and query
    for layer in spec.layer_names():
        a = f"{layer}.attention"
        q, k, v = (_dense(h_size, f"{a}.{part}", backbone, h) for part in ("query", "key", "value"))
        context = SelfAttention(spec.heads, matmul_dtype, name=f"{a}.core")(q, k, v, bias)
        h = _norm(spec, f"{layer}.attention_norm", h + _dense(h_size, f"{a}.output", backbone, context))
        f = keras.activations.gelu(_dense(spec.intermediate, f"{layer}.ffn.intermediate", backbone, h),
                                   approximate=False)
        h = _norm(spec, f"{layer}.ffn_norm", h + _dense(h_size, f"{layer}.ffn.output", backbone, f))

    if spec.pooling == "cls":
        return h[:, 0, :]
    weights = ops.expand_dims(real, -1)  # (n, L, 1)
    return ops.sum(h * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), MIN_TOKENS)
