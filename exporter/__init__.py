"""inference-throughput-exporter: tokens per second per GPU, cost and energy per token, for Prometheus."""

from __future__ import annotations

__version__ = "0.1.0"
