"""A small HTTP/1.1 load generator that runs in its own process, so it never shares a core's time with the server.

It sends one request at a time over one keep-alive connection (as Prometheus scrapes a target) and
times each from the first byte sent to the last byte read. With ``--fresh PATH`` it first POSTs to
``PATH`` (``--publishes`` times, ``--gap`` seconds apart, untimed) before every timed request, so
that each scrape meets a snapshot published just before it, as a scrape after each poll does, or
one published after several that nobody read, as a 15 s scrape of a 1 s poll does (in compressed
time).

``python -m bench.loadgen --port P --seconds 2`` prints one JSON line: the latencies in seconds and
the size of the last body.
"""

from __future__ import annotations

import argparse
import json
import socket
import time

ACCEPT_OPENMETRICS = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
"""What Prometheus 2.x sends by default."""


class Connection:
    """One keep-alive connection to 127.0.0.1:``port``."""

    def __init__(self, port: int) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._host = f"127.0.0.1:{port}"
        self._buffer = bytearray()

    def request(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        """Send one request and read the whole response; return the status and body."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self._host}", "Content-Length: 0"]
        lines += [f"{key}: {value}" for key, value in headers.items()]
        self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = self._read_until(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        fields = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
        if fields.get("transfer-encoding", "").lower() == "chunked":
            return int(status_line.split()[1]), self._read_chunked()
        return int(status_line.split()[1]), self._read_exactly(int(fields.get("content-length", "0")))

    def _fill(self) -> None:
        chunk = self._sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self._buffer += chunk

    def _read_until(self, marker: bytes) -> bytes:
        while (end := self._buffer.find(marker)) < 0:
            self._fill()
        data = bytes(self._buffer[:end])
        del self._buffer[: end + len(marker)]
        return data

    def _read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._fill()
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while size := int(self._read_until(b"\r\n").split(b";")[0], 16):
            body += self._read_exactly(size)
            self._read_until(b"\r\n")
        self._read_until(b"\r\n")
        return bytes(body)

    def close(self) -> None:
        self._sock.close()


def run(
    port: int,
    path: str,
    headers: dict[str, str],
    *,
    seconds: float,
    least: int,
    fresh: str | None,
    publishes: int = 1,
    gap: float = 0.0,
) -> dict[str, object]:
    """Time requests for ``seconds`` (and at least ``least`` of them) after a warm-up of three untimed ones."""
    connection = Connection(port)
    latencies: list[float] = []
    size = 0

    def one() -> float:
        for _ in range(publishes if fresh is not None else 0):
            connection.request("POST", fresh or "", {})
            time.sleep(gap)  # pacing: snapshots come this far apart
        started = time.perf_counter()
        status, body = connection.request("GET", path, headers)
        if status != 200:
            raise RuntimeError(f"HTTP {status} from {path}")
        nonlocal size
        size = len(body)
        return time.perf_counter() - started

    try:
        for _ in range(3):  # warm-up, in the same rhythm: connection set up, the server used to it
            one()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline or len(latencies) < least:
            latencies.append(one())
    finally:
        connection.close()
    return {"latencies": latencies, "bytes": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/metrics")
    parser.add_argument("--seconds", type=float, default=2.0, help="how long to send requests (default 2)")
    parser.add_argument("--least", type=int, default=200, help="at least this many requests (default 200)")
    parser.add_argument("--gzip", action="store_true", help="accept gzip")
    parser.add_argument("--openmetrics", action="store_true", help="ask for OpenMetrics as Prometheus does")
    parser.add_argument("--fresh", metavar="PATH", help="POST to PATH before each timed request")
    parser.add_argument("--publishes", type=int, default=1, help="how many POSTs before each request (default 1)")
    parser.add_argument("--gap", type=float, default=0.0, help="seconds after each POST (default 0)")
    args = parser.parse_args()
    headers = {"Accept": ACCEPT_OPENMETRICS if args.openmetrics else "text/plain;version=0.0.4"}
    if args.gzip:
        headers["Accept-Encoding"] = "gzip"
    result = run(
        args.port,
        args.path,
        headers,
        seconds=args.seconds,
        least=args.least,
        fresh=args.fresh,
        publishes=args.publishes,
        gap=args.gap,
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
