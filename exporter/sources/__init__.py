"""Data sources: NVML for the GPUs (``gpu``) and one adapter per inference server (``servers``)."""
