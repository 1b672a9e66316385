"""Tell systemd about start-up, reloads and shutdown (``Type=notify``), without a dependency.

The protocol is one datagram of ``KEY=VALUE`` lines to the Unix socket named by ``$NOTIFY_SOCKET``
(a path, or an abstract name written with a leading ``@``). Outside systemd there is no socket and
every call does nothing. A notification is best effort: a failure to send is logged and never stops
the exporter. The CLI reads the environment and passes the address in.
"""

from __future__ import annotations

import socket
import time

import structlog

log = structlog.get_logger("exporter.serve.sdnotify")


def socket_address(address: str) -> str | bytes:
    """The address to send to: abstract names (``@name``) start with a NUL byte."""
    return b"\0" + address[1:].encode() if address.startswith("@") else address


class Notifier:
    """Sends state changes to the service manager, if there is one."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address or None

    @property
    def enabled(self) -> bool:
        """True when a service manager listens."""
        return self.address is not None

    def notify(self, *fields: str) -> bool:
        """Send ``fields`` (``READY=1``, ``STATUS=...``) as one datagram; return whether it was sent."""
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(fields).encode(), socket_address(self.address))
        except OSError as exc:
            log.warning("sd_notify_failed", address=self.address, error=exc.strerror or str(exc))
            return False
        return True

    def ready(self, status: str) -> bool:
        """Start-up or a reload finished."""
        return self.notify("READY=1", f"STATUS={status}")

    def reloading(self) -> bool:
        """A reload began (with the monotonic time systemd 253+ asks for)."""
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self) -> bool:
        """Shutdown began."""
        return self.notify("STOPPING=1", "STATUS=shutting down")
