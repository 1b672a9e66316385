"""Dense BF16 tensor-core peaks by NVML product name, the denominator of model FLOP utilization.

NVIDIA's datasheets print BF16/FP16 tensor peaks *with sparsity* (marked ``*`` there); the dense peak
is half of that. Every value below is dense, in FLOP/s, per GPU. ``SOURCES`` says where each one
comes from and how sure it is: ``checked`` figures were checked against NVIDIA's figure (or a
verbatim copy of its table), ``quoted`` ones are NVIDIA's figure as commonly quoted without the
datasheet opened, and ``unverified`` ones have no NVIDIA figure found and come from third parties.
Any of them is overridden by ``gpu.peak_flops`` in the configuration, by name.

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

H100 = "https://resources.nvidia.com/en-us-tensor-core/nvidia-tensor-core-gpu-datasheet"
A100 = "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf"
HGX = "https://www.nvidia.com/en-us/data-center/hgx/"
RTX_PRO = (
    "unverified: NVIDIA gives only 4,000 FP4* AI TOPS; 503.8 dense in a third-party spec database, "
    "from the 2,617 MHz boost clock"
)
SOURCES: Mapping[str, str] = {
    "NVIDIA H100 80GB HBM3": f"checked: 1,978.9* in a copy of NVIDIA's Hopper table (989.4 dense); {H100}",
    "NVIDIA H100 PCIe": f"quoted: 1,513* in NVIDIA's H100 datasheet, not opened; {H100}",
    "NVIDIA H100 NVL": f"quoted: 1,671* per GPU in NVIDIA's current H100 datasheet, not opened; {H100}",
    "NVIDIA H200": "checked: the H100 SXM's GH100 tensor cores, 989 dense in third-party copies of NVIDIA's figures; "
    "https://www.nvidia.com/en-us/data-center/h200/",
    "NVIDIA H200 NVL": "quoted: 1,671* in NVIDIA's H200 NVL figures, not opened; https://www.nvidia.com/en-us/data-center/h200/",
    "NVIDIA GH200 480GB": "quoted: 1,979* (H100-class GPU), not opened; "
    "https://www.nvidia.com/en-us/data-center/grace-hopper-superchip/",
    "NVIDIA H800": "unverified: no NVIDIA figure found; the H100 SXM's tensor cores per press coverage",
    "NVIDIA H20": "unverified: no NVIDIA datasheet; 148 dense FP16/BF16 as third parties report it",
    "NVIDIA B200": f"checked: HGX B200 36 PFLOPS* FP16/BF16 per 8 GPUs in copies of NVIDIA's table; {HGX}",
    "NVIDIA B300 SXM6 AC": f"checked: HGX B300 36 PFLOPS* FP16/BF16 per 8 GPUs in copies of NVIDIA's table "
    f"(one third-party article says 3,500 dense); {HGX}",
    "NVIDIA GB200": "checked: 2,500 dense per GPU at 1,200 W in a copy of NVIDIA's GB200 figures (360 PFLOPS* per 72); "
    "https://www.nvidia.com/en-us/data-center/gb200-nvl72/",
    "NVIDIA A100-SXM4-80GB": f"checked: BF16 tensor 312 (624*) in a copy of NVIDIA's A100 datasheet; {A100}",
    "NVIDIA A100-SXM4-40GB": f"checked: BF16 tensor 312 (624*), as the 80 GB part; {A100}",
    "NVIDIA A100 80GB PCIe": f"checked: BF16 tensor 312 (624*), as the SXM4 part; {A100}",
    "NVIDIA A100-PCIE-40GB": f"checked: BF16 tensor 312 (624*), as the SXM4 part; {A100}",
    "NVIDIA A800-SXM4-80GB": "unverified: no NVIDIA figure found; 311.9 dense in third-party spec databases, as A100",
    "NVIDIA L40S": "checked: BFLOAT16 tensor 362.05 (733*) in a verbatim copy of NVIDIA's datasheet table; "
    "https://www.nvidia.com/en-us/data-center/l40s/",
    "NVIDIA L40": "checked: BFLOAT16 tensor 181.05 (362.1*) in the same table; https://www.nvidia.com/en-us/data-center/l40/",
    "NVIDIA L4": "quoted: 242* FP16/BF16 tensor, not opened; https://www.nvidia.com/en-us/data-center/l4/",
    "NVIDIA A10": "quoted: 250* BF16 tensor, not opened; https://www.nvidia.com/en-us/data-center/products/a10-gpu/",
    "NVIDIA RTX 6000 Ada Generation": "quoted: 728.5* BF16 tensor (Ada whitepaper), not opened; "
    "https://www.nvidia.com/en-us/design-visualization/rtx-6000/",
    "NVIDIA RTX PRO 6000 Blackwell Server Edition": f"{RTX_PRO} (the Server Edition may clock lower)",
    "NVIDIA RTX PRO 6000 Blackwell Workstation Edition": RTX_PRO,
}
"""Where each peak comes from: ``checked`` against NVIDIA's figure (or a verbatim copy of it), ``quoted`` (NVIDIA's
figure as commonly quoted; the datasheet was not opened), ``unverified`` (no NVIDIA figure found)."""


def peak_flops(name: str | None, overrides: Mapping[str, float]) -> float | None:
    """The dense BF16 peak of a GPU by its NVML product name: the configuration's, else the table's."""
    if name is None:
        return None
    return overrides.get(name, PEAK_FLOPS.get(name))
