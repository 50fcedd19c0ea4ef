"""The zoo's BERT encoder (:class:`zoo.models.BertSpec`, e.g. MiniLM-L6) as a Flax linen module.

A native post-LayerNorm encoder made of Flax's own layers (``nn.Embed``, ``nn.Dense``,
``nn.LayerNorm``) and an explicit, head-vectorised attention (two ``einsum``; no loop over heads
or examples). The forward pass is the one :mod:`zoo.models.bert` specifies. Every submodule is
named by its canonical prefix inside one compact ``__call__``, so
``layers.0.attention.query.kernel`` is ``params["layers.0.attention.query"]["kernel"]`` and
``embeddings.word.embedding`` is ``params["embeddings.word"]["embedding"]`` (:mod:`zoo_jax.modules`
maps the names; Flax's layouts are the canonical ones, so weights convert unchanged).

* Input: the batch form ``{"tokens": int32 (n, L), "mask": int32 (n, L)}``; any ``L <=
  max_positions`` (rows ``0..L-1`` of the full position table) and any batch size. Token type
  ids are all 0 (row 0 of the type table). Gradients flow only to parameters: the integer
  inputs are indices and a mask, never differentiated.
* Flax defaults that differ from BERT, set explicitly: ``nn.LayerNorm(epsilon=spec.ln_eps,
  use_fast_variance=False)`` (the default ``E[x^2] - E[x]^2`` loses precision at eps 1e-12)
  and ``nn.gelu(approximate=False)`` (the default is the tanh approximation).
* Padding: ``(1 - mask) * MASK_BIAS`` added to the scores of every padding key, float32.
* Precision (``dtype`` is the encoder's compute dtype; the contract's bf16 rule of
  :mod:`zoo.models.bert`): with ``bfloat16`` every encoder ``nn.Dense`` has ``dtype=bfloat16,
  param_dtype=float32`` (matmul and bias add in bf16 from the float32 parameters) and its result
  is cast to float32 at once; the two attention matmuls take bf16-cast operands and their bf16
  results are cast to float32 at once. Embedding sum, LayerNorm, softmax, GELU, residual adds,
  pooling and the head are float32, so logits are float32.
* Measured against the float64 reference (``tests/test_jax_bert.py``, CPU): fp32 logits within
  8.1e-7 absolute (random 2-layer H=32 spec, L=16 and 7, both poolings) and 6.4e-7 (MiniLM-L6's
  real weights, L=16); bf16 max |err| / max |logit| 4.3e-3 to 7.6e-3 (random spec) and 8.8e-3
  (MiniLM).
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from zoo.models.bert import MASK_BIAS, MIN_TOKENS, BertSpec


class Bert(nn.Module):
    spec: BertSpec
    num_classes: int
    dtype: Any = jnp.float32  # the encoder's compute dtype (module doc)

    def _dense(self, name: str, features: int, h: jax.Array) -> jax.Array:
        """An encoder dense layer: matmul + bias in ``dtype``, result float32 at once."""
        return nn.Dense(features, dtype=self.dtype, param_dtype=jnp.float32, name=name)(h).astype(jnp.float32)

    def _norm(self, name: str, h: jax.Array) -> jax.Array:
        return nn.LayerNorm(epsilon=self.spec.ln_eps, use_fast_variance=False, dtype=jnp.float32,
                            param_dtype=jnp.float32, name=name)(h)

    @nn.compact
    def __call__(self, x: Any, train: bool = False) -> jax.Array:
        s, f32, dt = self.spec, jnp.float32, self.dtype
        tokens, mask = jnp.asarray(x["tokens"], jnp.int32), jnp.asarray(x["mask"]).astype(f32)
        n, length = tokens.shape
        heads, d = s.heads, s.head_dim

        def embed(name: str, rows: int, ids: jax.Array) -> jax.Array:
            return nn.Embed(rows, s.hidden, dtype=f32, param_dtype=f32, name=name)(ids)

        h = (embed("embeddings.word", s.vocab_size, tokens)
             + embed("embeddings.position", s.max_positions, jnp.arange(length, dtype=jnp.int32))
             + embed("embeddings.token_type", s.type_vocab_size, jnp.zeros((1,), jnp.int32)))
        h = self._norm("embeddings.norm", h)
        bias = ((1.0 - mask) * MASK_BIAS)[:, None, None, :]  # (n, 1, 1, keys), float32
        for layer in s.layer_names():
            a = f"{layer}.attention"
            q, k, v = (self._dense(f"{a}.{p}", s.hidden, h).reshape(n, length, heads, d)
                       for p in ("query", "key", "value"))
            scores = jnp.einsum("bqhd,bkhd->bhqk", q.astype(dt), k.astype(dt)).astype(f32) / math.sqrt(d) + bias
            probs = jax.nn.softmax(scores, axis=-1)
            context = jnp.einsum("bhqk,bkhd->bqhd", probs.astype(dt), v.astype(dt)).astype(f32)
            attended = self._dense(f"{a}.output", s.hidden, context.reshape(n, length, s.hidden))
            h = self._norm(f"{layer}.attention_norm", h + attended)
            ffn = nn.gelu(self._dense(f"{layer}.ffn.intermediate", s.intermediate, h), approximate=False)
            h = self._norm(f"{layer}.ffn_norm", h + self._dense(f"{layer}.ffn.output", s.hidden, ffn))
        if s.pooling == "cls":
            pooled = h[:, 0]
        else:
            pooled = (h * mask[..., None]).sum(axis=1) / jnp.maximum(mask.sum(axis=1, keepdims=True), MIN_TOKENS)
        return nn.Dense(self.num_classes, dtype=f32, param_dtype=f32, name="head")(pooled.astype(f32))


def bert(spec: BertSpec, num_classes: int, dtype: Any, train_bn: frozenset[str]) -> nn.Module:
    """The builder :data:`zoo_jax.families.FAMILIES` names for the bert family (no BatchNorm:
    ``train_bn`` is unused)."""
    return Bert(spec, num_classes, dtype)
