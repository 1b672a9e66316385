"""Which GPUs serve which server: from the config, the server's processes, or the kubelet.

- ``resolve``: pure functions from what was observed (PIDs, device files, kubelet allocations, an
  NVML reading) to claims on GPUs and MIG instances, and from claims to cost shares.
- ``local``: finds a server's processes from the port its URL points at (``psutil``).
- ``kubelet``: reads the kubelet's pod-resources gRPC API (optional ``kubernetes`` extra).
- ``attributor``: keeps the answers, refreshes them in the background, and never makes a scrape wait.
"""
