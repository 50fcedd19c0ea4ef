"""Dense data-sheet peaks of the GPUs we know, matched on *whole* model names.

The name ``nvidia-smi`` reports (``"NVIDIA H100 80GB HBM3"``) goes through one explicit
normaliser, :func:`gpu_model`, to a row of :data:`GPU_PEAK_TFLOPS`. Matching is on the whole
name after normalising case, spaces and the vendor prefix: never by substring, which gave
"NVIDIA L40" the L4's figures and "H200 NVL" the SXM's. A name not listed gives ``None`` and the
peak is "unknown" (no utilisation), never a neighbour's figure: add the name to
:data:`NAME_TO_MODEL` once you have checked its data sheet.

Figures are TFLOP/s **without sparsity** (the data sheets print the 2:4-sparse figures for tensor
cores, with an asterisk; dense is half of them), at the boost clock:

* ``fp32``: the CUDA cores, no tensor cores (TF32 off);
* ``tf32``: TF32 tensor cores on float32 inputs;
* ``bf16``: BF16 tensor cores, FP32 accumulation.

Sources (NVIDIA data sheets and architecture whitepapers):

* H100 SXM / PCIe: "NVIDIA H100 Tensor Core GPU Architecture" whitepaper (v1.04), table 3:
  SXM5 FP32 66.9, TF32 494.7, BF16 989.4; PCIe FP32 51.2, TF32 378, BF16 756 (dense).
* H100 NVL, H200 SXM, H200 NVL: the "NVIDIA H100" and "NVIDIA H200 Tensor Core GPU" data
  sheets (2024): NVL FP32 60, TF32 835*, BF16 1,671* *per GPU* (* sparse; the 2023 H100 NVL
  sheet printed the figures of the two-card pair, 134 / 1,979* / 3,958*); H200 SXM FP32 67,
  TF32 989*, BF16 1,979* (the H100 SXM's compute with more memory).
* A100 (SXM4 and PCIe, 40 and 80 GB): "NVIDIA A100 Tensor Core GPU" data sheet: FP32 19.5,
  TF32 156, BF16 312 (dense; 312* / 624* sparse).
* L40S: data sheet: FP32 91.6, TF32 183 (366*), BF16 362.05 (733*).
* L40: data sheet: FP32 90.5, TF32 90.5 (181*), BF16 181.05 (362.1*).
* L4: data sheet: FP32 30.3, TF32 120*, BF16 242* (so 60 and 121 dense).
* A10: data sheet: FP32 31.2, TF32 62.5 (125*), BF16 125 (250*).

Not listed on purpose: V100 and T4 (no BF16 tensor cores), A10G and other cloud-only parts
whose clocks differ from the retail card's, GH200 (a different power envelope), MIG slices.
"""

from __future__ import annotations

import re
from typing import Mapping

#: Dense peak TFLOP/s by model (see the module docstring for each figure's source).
GPU_PEAK_TFLOPS: Mapping[str, Mapping[str, float]] = {
    "H100 SXM": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4},
    "H100 PCIe": {"fp32": 51.0, "tf32": 378.0, "bf16": 756.0},
    "H100 NVL": {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5},
    "H200 SXM": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4},
    "H200 NVL": {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5},
    "A100": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0},
    "L40S": {"fp32": 91.6, "tf32": 183.0, "bf16": 362.05},
    "L40": {"fp32": 90.5, "tf32": 90.5, "bf16": 181.05},
    "L4": {"fp32": 30.3, "tf32": 60.0, "bf16": 121.0},
    "A10": {"fp32": 31.2, "tf32": 62.5, "bf16": 125.0},
}

#: Normalised nvidia-smi name (see :func:`normalise_name`) -> a row of :data:`GPU_PEAK_TFLOPS`.
#: Whole names only, as nvidia-smi prints them (SXM parts carry no "SXM" in their names).
NAME_TO_MODEL: Mapping[str, str] = {
    "h100 80gb hbm3": "H100 SXM",
    "h100 pcie": "H100 PCIe",
    "h100 nvl": "H100 NVL",
    "h200": "H200 SXM",
    "h200 nvl": "H200 NVL",
    "a100-sxm4-80gb": "A100",
    "a100-sxm4-40gb": "A100",
    "a100-sxm-80gb": "A100",
    "a100-pcie-40gb": "A100",
    "a100 80gb pcie": "A100",
    "l40s": "L40S",
    "l40": "L40",
    "l4": "L4",
    "a10": "A10",
}

PRECISIONS = ("fp32", "tf32", "bf16")


def normalise_name(name: str) -> str:
    """``"  NVIDIA  H100 80GB HBM3 "`` -> ``"h100 80gb hbm3"``: lower case, single spaces, without
    the ``NVIDIA`` vendor prefix. ``Tesla``/``Quadro`` prefixes are kept: those parts are not in
    the table and must stay unknown."""
    text = " ".join(name.split()).lower()
    return re.sub(r"^nvidia ", "", text)


def gpu_model(name: str) -> str | None:
    """The :data:`GPU_PEAK_TFLOPS` row for an nvidia-smi name, or ``None`` when it is not listed."""
    return NAME_TO_MODEL.get(normalise_name(name))


def datasheet_tflops(name: str, precision: str) -> tuple[str | None, float | None]:
    """``(model, TFLOP/s)`` for a GPU name and precision; ``(model or None, None)`` when unknown."""
    model = gpu_model(name)
    if model is None:
        return None, None
    return model, GPU_PEAK_TFLOPS[model].get(precision)
