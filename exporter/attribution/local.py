"""Find a server's processes on this host from the port its URL points at (``psutil``).

The process that owns the listening socket, with all its descendants, is the server (vLLM's engine
and workers are children of its API server). Where the front end's children hold no GPU, its
parent's other descendants are tried too: TGI's launcher starts the router (which listens) and the
shards (which hold the GPUs) side by side. A parent that is PID 1 or one of the exporter's own
ancestors is never taken.

NVML lists *host* PIDs. The exporter sees the same PIDs only in the host's PID namespace (bare
metal, systemd, ``hostPID: true``). In another namespace the PIDs cannot match; then the GPU device
files the server's processes hold open (``/dev/nvidiaN``) still say which GPUs they use.

Finding a socket's owner needs to read other processes' ``/proc/PID/fd``: the same user as the
server, or ``CAP_SYS_PTRACE``. Every lookup runs in a worker thread; a full socket scan happens only
when a cached owner stopped listening.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import psutil


@dataclass(frozen=True, slots=True)
class ServerProcesses:
    """What was found for one server URL."""

    pids: frozenset[int] = frozenset()
    """The listener and its descendants, as this exporter sees their PIDs."""
    family: frozenset[int] = frozenset()
    """The listener's parent and all its descendants (siblings included), when that parent may be taken."""
    note: str = ""
    """Why nothing was found."""


def url_port(url: str) -> tuple[str, int]:
    """The host and port a server URL points at (80 or 443 when the URL names none)."""
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


class LocalProcesses:
    """Finds servers' processes by port, and the GPU device files processes hold open."""

    def __init__(self, *, dev_dir: str = "/dev", proc_dir: str = "/proc") -> None:
        self._device = re.compile(rf"^{re.escape(dev_dir.rstrip('/'))}/nvidia(\d+)$")
        self._proc = proc_dir
        self._listeners: dict[int, frozenset[int]] = {}
        self._ancestors = _ancestors_of(os.getpid())

    def find(self, urls: list[str]) -> dict[str, ServerProcesses]:
        """The processes behind each URL; one socket scan at most for all of them."""
        ports = {url: url_port(url) for url in urls}
        local = {url: hp for url, hp in ports.items() if is_local_host(hp[0])}
        stale = {port for _, port in local.values() if not self._still_listening(port)}
        if stale:
            self._scan(stale)
        found = {}
        for url in urls:
            if url not in local:
                found[url] = ServerProcesses(note=f"{ports[url][0]} is not an address of this host")
            else:
                found[url] = self._processes(local[url][1])
        return found

    def open_gpu_minors(self, pids: frozenset[int]) -> frozenset[int]:
        """N of every ``/dev/nvidiaN`` that one of ``pids`` holds open (unreadable processes are skipped)."""
        minors: set[int] = set()
        for pid in pids:
            fd_dir = f"{self._proc}/{pid}/fd"
            with contextlib.suppress(OSError):
                for fd in os.listdir(fd_dir):
                    with contextlib.suppress(OSError):
                        match = self._device.match(os.readlink(f"{fd_dir}/{fd}"))
                        if match:
                            minors.add(int(match.group(1)))
        return frozenset(minors)

    def _still_listening(self, port: int) -> bool:
        pids = self._listeners.get(port)
        if not pids:
            return False
        try:
            return all(_listens(psutil.Process(pid).net_connections(kind="inet"), port) for pid in pids)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return False

    def _scan(self, ports: set[int]) -> None:
        owners: dict[int, set[int]] = {port: set() for port in ports}
        try:
            connections = psutil.net_connections(kind="inet")
        except psutil.AccessDenied:
            connections = []
        for conn in connections:
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port in owners and conn.pid:
                owners[conn.laddr.port].add(conn.pid)
        for port, pids in owners.items():
            self._listeners[port] = frozenset(pids)

    def _processes(self, port: int) -> ServerProcesses:
        listeners = self._listeners.get(port, frozenset())
        if not listeners:
            return ServerProcesses(
                note=f"no process visible to the exporter listens on port {port} "
                "(another user's process needs the same user or CAP_SYS_PTRACE)"
            )
        pids: set[int] = set()
        family: set[int] = set()
        for pid in listeners:
            pids |= _tree(pid)
            family |= self._family(pid)
        return ServerProcesses(frozenset(pids), frozenset(family | pids))

    def _family(self, pid: int) -> set[int]:
        try:
            parent = psutil.Process(pid).parent()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return set()
        if parent is None or parent.pid <= 1 or parent.pid in self._ancestors:
            return set()
        return _tree(parent.pid)


def _listens(connections: list[Any], port: int) -> bool:
    return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in connections)


def _tree(pid: int) -> set[int]:
    """``pid`` and all its descendants that still exist."""
    try:
        process = psutil.Process(pid)
        return {pid, *(child.pid for child in process.children(recursive=True))}
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return set()


def _ancestors_of(pid: int) -> frozenset[int]:
    """``pid`` and every process above it: never taken as a server's family."""
    try:
        process = psutil.Process(pid)
        return frozenset({pid, *(p.pid for p in process.parents())})
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return frozenset({pid})


def is_local_host(host: str) -> bool:
    """True when ``host`` names this machine: loopback, an address of one of its interfaces, or a name for one."""
    if host in ("", "localhost"):
        return True
    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:
        try:
            addresses = {ipaddress.ip_address(info[4][0]) for info in socket.getaddrinfo(host, None)}
        except (OSError, ValueError):
            return False
    own = {
        ipaddress.ip_address(a.address.split("%")[0])
        for nic in psutil.net_if_addrs().values()
        for a in nic
        if a.family in (socket.AF_INET, socket.AF_INET6)
    }
    return any(a.is_loopback or a.is_unspecified or a in own for a in addresses)
