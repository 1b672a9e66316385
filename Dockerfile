# inference-throughput-exporter as a small non-root image: Debian slim, Python, the exporter.
#   docker build -t inference-throughput-exporter:0.1.0 .
# The project publishes no image and its CI builds none (there is no container runtime there), so
# this file is kept short enough to review by eye. NVML (libnvidia-ml) is not in the image: the
# NVIDIA container runtime mounts the host driver's copy (Kubernetes: runtimeClassName: nvidia).

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# Build: install the exporter and its Kubernetes extra (the kubelet pod-resources client) in a venv.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN python -m venv /opt/inference-throughput-exporter \
 && /opt/inference-throughput-exporter/bin/pip install ".[kubernetes]" \
 && /opt/inference-throughput-exporter/bin/pip uninstall --yes pip

# Run: the same Python, the venv, nothing else; an unprivileged user and no writable paths needed.
FROM ${PYTHON_IMAGE}
COPY --from=build /opt/inference-throughput-exporter /opt/inference-throughput-exporter
ENV PATH=/opt/inference-throughput-exporter/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
EXPOSE 9842
ENTRYPOINT ["inference-throughput-exporter"]
CMD ["--config.file=/etc/inference-throughput-exporter/config.yml"]
