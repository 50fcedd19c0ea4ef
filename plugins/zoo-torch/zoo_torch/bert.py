"""The zoo's BERT encoders (:class:`zoo.models.BertSpec`, MiniLM-L6) as a native torch module.

Plain ``nn.Embedding``/``nn.Linear``/``nn.LayerNorm`` layers and explicit attention (no
``nn.MultiheadAttention``, no HF transformers), each registered at its canonical path, so a
canonical name's torch key is the name with torch's variable at the end:
``embeddings.word.embedding`` -> ``embeddings.word.weight``, ``layers.3.attention.query.kernel``
-> ``layers.3.attention.query.weight``, ``layers.3.ffn_norm.scale`` -> ``layers.3.ffn_norm.weight``.
Dense kernels are transposed by role in :mod:`zoo_torch.modules`; embedding tables are copied as
they are.

The forward pass is :mod:`zoo.models.bert`'s: it takes the batch form ``{"tokens", "mask"}``
(int32; ``F.embedding`` takes int32 ids), adds position rows ``0..L-1`` and token-type row 0,
LayerNorm with ``eps=spec.ln_eps``; per layer Q, K and V as three GEMMs (one GEMM over the
concatenated kernels measured no faster on 2 CPU cores), attention vectorised over heads
(``(n, heads, L, d)`` batched matmuls, no Python loop over heads or examples) with the additive
finite ``(1 - mask) * MASK_BIAS`` per key, exact-erf GELU (``F.gelu``'s default); then masked
mean (denominator clamped at ``MIN_TOKENS``) or CLS pooling and the float32 head.

In float32 the attention is ``F.scaled_dot_product_attention`` (the fused CPU kernel; same
formula: ``q k^T * d**-0.5 + bias``, float32 softmax). Measured against the float64 reference:
max |logit error| 1.2e-6 on the tiny random spec of the tests (max |logit| 2.4), 8.3e-7 on
MiniLM's pooled features (max 0.86; 4 sentences, L=16).

Precision ``bf16`` (the spec's rule, with explicit casts, not autocast): every encoder dense is
``F.linear(x.bfloat16(), w.bfloat16(), b.bfloat16()).float()``; ``q k^T`` and ``softmax v``
take bfloat16 operands and their bfloat16 results are cast to float32 at once; the embedding
sum, LayerNorms, softmax, GELU, residual adds, pooling and head stay float32. Measured max
|logit error| / max |logit|: 8.3e-3 on MiniLM's pooled features (4 sentences, L=16), 0.8e-2 to
1.2e-2 on the tiny random spec of the tests.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from zoo.models.bert import MASK_BIAS, MIN_TOKENS, BertSpec
from zoo_torch.modules import Backbone
from zoo_torch.resnet import ResNet

#: canonical variable -> torch's, for embeddings, dense layers, LayerNorms and the head.
TORCH_NAMES = {"kernel": "weight", "scale": "weight", "bias": "bias", "embedding": "weight"}


def _dense16(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    """The bf16 rule for one dense: matmul + bias in bfloat16, the result cast to float32 at once."""
    return F.linear(x.bfloat16(), layer.weight.bfloat16(), layer.bias.bfloat16()).float()


class BertEncoderLayer(nn.Module):
    """One post-LayerNorm encoder layer; its children are the canonical names under ``layers.{i}``."""

    def __init__(self, spec: BertSpec):
        super().__init__()
        h, f = spec.hidden, spec.intermediate
        self.heads, self.head_dim = spec.heads, spec.head_dim
        self.scale = 1.0 / math.sqrt(spec.head_dim)
        self.attention = nn.Module()
        for part in ("query", "key", "value", "output"):
            self.attention.add_module(part, nn.Linear(h, h))
        self.attention_norm = nn.LayerNorm(h, eps=spec.ln_eps)
        self.ffn = nn.Module()
        self.ffn.add_module("intermediate", nn.Linear(h, f))
        self.ffn.add_module("output", nn.Linear(f, h))
        self.ffn_norm = nn.LayerNorm(h, eps=spec.ln_eps)

    def _dense(self, x: torch.Tensor, layer: nn.Linear, bf16: bool) -> torch.Tensor:
        return _dense16(x, layer) if bf16 else layer(x)

    def forward(self, h: torch.Tensor, bias: torch.Tensor, bf16: bool) -> torch.Tensor:
        """``h`` float32 ``(n, L, H)``; ``bias`` the additive key mask ``(n, 1, 1, L)``."""
        n, length, hidden = h.shape
        a, ffn = self.attention, self.ffn

        def heads(layer: nn.Linear) -> torch.Tensor:  # (n, L, H) -> (n, heads, L, d), a view
            return self._dense(h, layer, bf16).view(n, length, self.heads, self.head_dim).transpose(1, 2)

        q, k, v = heads(a.query), heads(a.key), heads(a.value)
        if bf16:
            scores = torch.matmul(q.bfloat16(), k.bfloat16().transpose(-1, -2)).float() * self.scale + bias
            context = torch.matmul(torch.softmax(scores, dim=-1).bfloat16(), v.bfloat16()).float()
        else:
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        context = context.transpose(1, 2).reshape(n, length, hidden)
        h = self.attention_norm(h + self._dense(context, a.output, bf16))
        out = self._dense(F.gelu(self._dense(h, ffn.intermediate, bf16)), ffn.output, bf16)
        return self.ffn_norm(h + out)


class Bert(Backbone):
    def __init__(self, spec: BertSpec, input_shape: tuple[int, ...], num_classes: int):
        super().__init__()
        self.spec = spec
        h = spec.hidden
        self._register("embeddings.word", nn.Embedding(spec.vocab_size, h))
        self._register("embeddings.position", nn.Embedding(spec.max_positions, h))
        self._register("embeddings.token_type", nn.Embedding(spec.type_vocab_size, h))
        self._register("embeddings.norm", nn.LayerNorm(h, eps=spec.ln_eps))
        self.layers = nn.ModuleList(BertEncoderLayer(spec) for _ in range(spec.num_layers))
        self.head = nn.Linear(h, num_classes)

    _register = ResNet._register

    @staticmethod
    def torch_key(canonical: str) -> str:
        layer, kind = canonical.rsplit(".", 1)
        return f"{layer}.{TORCH_NAMES[kind]}"

    def forward(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        tokens, mask = x["tokens"], x["mask"]
        length = tokens.shape[1]
        e = self.embeddings
        h = e.word(tokens) + (e.position.weight[:length] + e.token_type.weight[0])
        h = e.norm(h)
        maskf = mask.to(h.dtype)
        bias = ((1.0 - maskf) * MASK_BIAS)[:, None, None, :]  # (n, 1, 1, keys)
        bf16 = self.bf16
        for layer in self.layers:
            h = layer(h, bias, bf16)
        if self.spec.pooling == "cls":
            pooled = h[:, 0]
        else:
            summed = torch.bmm(maskf[:, None, :], h)[:, 0]  # sum over real tokens, (n, H)
            pooled = summed / maskf.sum(dim=1, keepdim=True).clamp_min(MIN_TOKENS)
        return self.head(pooled)
