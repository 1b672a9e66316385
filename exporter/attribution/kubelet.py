"""Read which devices each pod and container holds from the kubelet's pod-resources API (gRPC, v1).

The kubelet serves ``v1.PodResourcesLister`` on a Unix socket (by default
``/var/lib/kubelet/pod-resources/kubelet.sock``). ``List`` returns every pod on the node with its
containers and their devices; for the NVIDIA device plugin the device IDs are GPU UUIDs, MIG UUIDs
(``nvidia.com/mig-1g.10gb``), UUIDs with a ``::N`` replica suffix (time-slicing), or NVML indices.

This needs the optional ``kubernetes`` extra (grpcio, protobuf); the stubs in ``podresources/`` are
generated from the kubelet's ``api.proto``. Calls block, so the attributor runs them in a thread.
"""

from __future__ import annotations

import importlib
from typing import Any

from exporter.attribution.resolve import ContainerDevice, device_ref

TIMEOUT_SECONDS = 5.0
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


class KubeletUnavailable(Exception):
    """The kubelet did not answer (socket missing, refused, timed out); the message says why."""


class PodResourcesClient:
    """A client of the kubelet's pod-resources API on a Unix socket."""

    def __init__(self, socket_path: str, timeout: float = TIMEOUT_SECONDS) -> None:
        self._grpc = importlib.import_module("grpc")
        self._pb2 = importlib.import_module("exporter.attribution.podresources.api_pb2")
        self._stubs = importlib.import_module("exporter.attribution.podresources.api_pb2_grpc")
        self.target = f"unix://{socket_path}"
        self.timeout = timeout
        self._channel: Any = None

    def list_devices(self) -> tuple[ContainerDevice, ...]:
        """Every device held by a container on this node; raise ``KubeletUnavailable``."""
        if self._channel is None:
            options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
            self._channel = self._grpc.insecure_channel(self.target, options=options)
        stub = self._stubs.PodResourcesListerStub(self._channel)
        try:
            response = stub.List(self._pb2.ListPodResourcesRequest(), timeout=self.timeout)
        except self._grpc.RpcError as exc:
            self.close()  # a fresh channel next time: no reconnect backoff after the kubelet restarts
            raise KubeletUnavailable(f"kubelet pod-resources API at {self.target}: {_reason(exc)}") from None
        return parse_list_response(response)

    def close(self) -> None:
        """Close the channel; the next call opens a new one."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None


def parse_list_response(response: Any) -> tuple[ContainerDevice, ...]:
    """The devices of a ``ListPodResourcesResponse`` that look like GPUs or MIG instances."""
    found = []
    for pod in response.pod_resources:
        for container in pod.containers:
            for devices in container.devices:
                for device_id in devices.device_ids:
                    ref = device_ref(devices.resource_name, device_id)
                    if ref is not None:
                        found.append(ContainerDevice(pod.namespace, pod.name, container.name, ref))
    return tuple(found)


def _reason(exc: Any) -> str:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    name = getattr(code, "name", "error")
    return f"{name}: {details}" if details else name
