"""Dense BF16 tensor-core peaks by NVML product name, the denominator of model FLOP utilization.

NVIDIA's datasheets print BF16/FP16 tensor peaks *with sparsity* (marked ``*`` there); the dense peak
is half of that. Every value below is dense, in FLOP/s, per GPU. ``SOURCES`` says where each one
comes from and how sure it is: ``datasheet`` figures were checked against NVIDIA's figure (or a
verbatim copy of its table); ``unverified`` ones have no NVIDIA figure found and come from third-party
spec databases. Any of them is overridden by ``gpu.peak_flops`` in the configuration, by name.

A name is matched exactly, as ``nvmlDeviceGetName`` returns it. A MIG instance reports its parent's
name, but a slice has only part of the peak, so no peak is given for a share of a MIG instance.
"""

from __future__ import annotations

from collections.abc import Mapping

TERA = 1e12

PEAK_FLOPS: Mapping[str, float] = {
    "NVIDIA H100 80GB HBM3": 989.4 * TERA,
    "NVIDIA H100 PCIe": 756.5 * TERA,
    "NVIDIA H100 NVL": 835.5 * TERA,
    "NVIDIA H200": 989.4 * TERA,
    "NVIDIA H200 NVL": 835.5 * TERA,
    "NVIDIA GH200 480GB": 989.4 * TERA,
    "NVIDIA H800": 989.4 * TERA,
    "NVIDIA H20": 148.0 * TERA,
    "NVIDIA B200": 2250.0 * TERA,
    "NVIDIA B300 SXM6 AC": 2250.0 * TERA,
    "NVIDIA GB200": 2500.0 * TERA,
    "NVIDIA A100-SXM4-80GB": 312.0 * TERA,
    "NVIDIA A100-SXM4-40GB": 312.0 * TERA,
    "NVIDIA A100 80GB PCIe": 312.0 * TERA,
    "NVIDIA A100-PCIE-40GB": 312.0 * TERA,
    "NVIDIA A800-SXM4-80GB": 312.0 * TERA,
    "NVIDIA L40S": 362.05 * TERA,
    "NVIDIA L40": 181.05 * TERA,
    "NVIDIA L4": 121.0 * TERA,
    "NVIDIA A10": 125.0 * TERA,
    "NVIDIA RTX 6000 Ada Generation": 364.2 * TERA,
    "NVIDIA RTX PRO 6000 Blackwell Server Edition": 503.8 * TERA,
    "NVIDIA RTX PRO 6000 Blackwell Workstation Edition": 503.8 * TERA,
}
"""Dense BF16 tensor peak per GPU, FLOP/s, by NVML product name."""

H100_DATASHEET = "NVIDIA H100 datasheet (1,979* SXM, 1,513* PCIe, 1,671* NVL TFLOPS with sparsity)"
SOURCES: Mapping[str, str] = {
    "NVIDIA H100 80GB HBM3": f"datasheet: {H100_DATASHEET}; dense 989.4 per NVIDIA's Hopper figures",
    "NVIDIA H100 PCIe": f"datasheet: {H100_DATASHEET}",
    "NVIDIA H100 NVL": f"datasheet (figure as quoted, PDF not opened): {H100_DATASHEET}",
    "NVIDIA H200": "datasheet: NVIDIA H200 (same GH100 tensor peak as H100 SXM, 1,979* TFLOPS)",
    "NVIDIA H200 NVL": "datasheet (figure as quoted, PDF not opened): NVIDIA H200 NVL, 1,671* TFLOPS",
    "NVIDIA GH200 480GB": "datasheet: NVIDIA GH200 Grace Hopper (H100-class GPU, 1,979* TFLOPS)",
    "NVIDIA H800": "unverified: no NVIDIA figure found; same GH100 tensor cores as H100 SXM per press coverage",
    "NVIDIA H20": "unverified: no NVIDIA datasheet; 148 dense FP16/BF16 as reported by third parties",
    "NVIDIA B200": "datasheet: NVIDIA HGX B200, 36 PFLOPS* FP16/BF16 per 8 GPUs (2,250 dense per GPU)",
    "NVIDIA B300 SXM6 AC": "datasheet: NVIDIA HGX B300, 36 PFLOPS* FP16/BF16 per 8 GPUs (2,250 dense per GPU)",
    "NVIDIA GB200": "datasheet: NVIDIA GB200 NVL72, 360 PFLOPS* FP16/BF16 per 72 GPUs (2,500 dense per GPU)",
    "NVIDIA A100-SXM4-80GB": "datasheet: NVIDIA A100, BF16 tensor 312 | 624*",
    "NVIDIA A100-SXM4-40GB": "datasheet: NVIDIA A100, BF16 tensor 312 | 624*",
    "NVIDIA A100 80GB PCIe": "datasheet: NVIDIA A100, BF16 tensor 312 | 624*",
    "NVIDIA A100-PCIE-40GB": "datasheet: NVIDIA A100, BF16 tensor 312 | 624*",
    "NVIDIA A800-SXM4-80GB": "unverified: no NVIDIA figure found; 311.9 dense in third-party spec databases (as A100)",
    "NVIDIA L40S": "datasheet: NVIDIA L40S, BFLOAT16 tensor 362.05 | 733*",
    "NVIDIA L40": "datasheet: NVIDIA L40, BFLOAT16 tensor 181.05 | 362.1*",
    "NVIDIA L4": "datasheet: NVIDIA L4, 242* TFLOPS FP16/BF16 tensor",
    "NVIDIA A10": "datasheet (figure as quoted, PDF not opened): NVIDIA A10, 250* TFLOPS BF16 tensor",
    "NVIDIA RTX 6000 Ada Generation": "datasheet: NVIDIA RTX 6000 Ada, 728.5* TFLOPS BF16 tensor",
    "NVIDIA RTX PRO 6000 Blackwell Server Edition": (
        "unverified: NVIDIA gives only 4,000 FP4* AI TOPS; 503.8 dense from a third-party spec database, "
        "computed from the 2,617 MHz boost clock (the Server Edition may clock lower)"
    ),
    "NVIDIA RTX PRO 6000 Blackwell Workstation Edition": (
        "unverified: NVIDIA gives only 4,000 FP4* AI TOPS; 503.8 dense from a third-party spec database, "
        "computed from the 2,617 MHz boost clock"
    ),
}
"""Where each peak comes from; ``unverified`` marks those without an NVIDIA figure."""


def peak_flops(name: str | None, overrides: Mapping[str, float]) -> float | None:
    """The dense BF16 peak of a GPU by its NVML product name: the configuration's, else the table's."""
    if name is None:
        return None
    return overrides.get(name, PEAK_FLOPS.get(name))
