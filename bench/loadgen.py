"""A small HTTP/1.1 load generator that runs in its own process, so it never shares a core's time with the server.

Each scraper keeps one keep-alive connection (as Prometheus does) and times each request from the
first byte sent to the last byte read. One scraper by default, sending its requests back to back;
``--paced MEAN`` waits a random time (uniform, 0 to twice MEAN seconds) before each request, so
requests arrive at random moments of the server's poll cycle, as Prometheus and its HA twin do;
``--connections N`` runs N scrapers at once, each back to back, from one thread (a selector), so the
generator's own threads never queue for its GIL.

``python -m bench.loadgen --port P --seconds 2`` prints one JSON line: the latencies in seconds and
the size of the last body.
"""

from __future__ import annotations

import argparse
import json
import random
import selectors
import socket
import time

ACCEPT_OPENMETRICS = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
"""What Prometheus 2.x sends by default."""
WARM_UP = 3
"""Untimed requests per connection first: connection set up, the server used to it."""


class Connection:
    """One keep-alive connection to 127.0.0.1:``port`` that sends one request at a time."""

    def __init__(self, port: int, path: str, headers: dict[str, str]) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Content-Length: 0"]
        lines += [f"{key}: {value}" for key, value in headers.items()]
        self._request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self._buffer = bytearray()
        self._started = 0.0
        self.size = 0

    def send(self) -> None:
        """Send the request and start its clock."""
        self._started = time.perf_counter()
        self.sock.sendall(self._request)

    def receive(self) -> float | None:
        """Read what has arrived; the latency once the whole response is in, else ``None``."""
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self._buffer += chunk
        return self._complete()

    def _complete(self) -> float | None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        status_line, *header_lines = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        fields = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
        if fields.get("transfer-encoding", "").lower() == "chunked":
            body = _dechunk(self._buffer, end + 4)
            if body is None:
                return None
            consumed, data = body
        else:
            size = int(fields.get("content-length", "0"))
            if len(self._buffer) < end + 4 + size:
                return None
            consumed, data = end + 4 + size, bytes(self._buffer[end + 4 : end + 4 + size])
        if int(status_line.split()[1]) != 200:
            raise RuntimeError(f"HTTP {status_line}")
        latency = time.perf_counter() - self._started
        del self._buffer[:consumed]
        self.size = len(data)
        return latency

    def request(self) -> float:
        """Send one request and wait for the whole response (blocking); return its latency."""
        self.send()
        while (latency := self.receive()) is None:
            pass
        return latency

    def close(self) -> None:
        self.sock.close()


def _dechunk(buffer: bytearray, start: int) -> tuple[int, bytes] | None:
    """(bytes consumed, body) of a complete chunked body from ``start``, or ``None`` if it is not all in yet."""
    body, at = bytearray(), start
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        size = int(bytes(buffer[at:line_end]).split(b";")[0], 16)
        if len(buffer) < line_end + 2 + size + 2:
            return None
        body += buffer[line_end + 2 : line_end + 2 + size]
        at = line_end + 2 + size + 2
        if size == 0:
            return at, bytes(body)


def one_connection(
    connection: Connection, *, seconds: float, least: int, paced: float | None, rng: random.Random
) -> list[float]:
    """Back to back (or paced) requests on one connection for ``seconds`` and at least ``least`` of them."""
    for _ in range(WARM_UP):
        connection.request()
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline or len(latencies) < least:
        if paced is not None:
            time.sleep(rng.uniform(0.0, 2.0 * paced))  # pacing: a random moment, not synchronization
        latencies.append(connection.request())
    return latencies


def many_connections(connections: list[Connection], *, seconds: float, least: int) -> list[float]:
    """Every connection back to back at once, for ``seconds`` and at least ``least`` timed requests in all."""
    for connection in connections:
        for _ in range(WARM_UP):
            connection.request()
    selector = selectors.DefaultSelector()
    for connection in connections:
        selector.register(connection.sock, selectors.EVENT_READ, connection)
        connection.send()
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    in_flight = len(connections)
    while in_flight:
        events = selector.select(timeout=30)
        if not events:
            raise TimeoutError("no response within 30 s")
        for key, _ in events:
            connection = key.data
            latency = connection.receive()
            if latency is None:
                continue
            latencies.append(latency)
            if time.monotonic() < deadline or len(latencies) < least:
                connection.send()
            else:
                in_flight -= 1
    selector.close()
    return latencies


def run(
    port: int,
    path: str,
    headers: dict[str, str],
    *,
    seconds: float,
    least: int,
    paced: float | None = None,
    connections: int = 1,
    seed: int = 1,
) -> dict[str, object]:
    """Time requests as asked; return the latencies and the size of the last body."""
    opened = [Connection(port, path, headers) for _ in range(connections)]
    try:
        if connections == 1:
            latencies = one_connection(opened[0], seconds=seconds, least=least, paced=paced, rng=random.Random(seed))
        else:
            latencies = many_connections(opened, seconds=seconds, least=least)
    finally:
        for connection in opened:
            connection.close()
    return {"latencies": latencies, "bytes": opened[0].size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/metrics")
    parser.add_argument("--seconds", type=float, default=2.0, help="how long to send requests (default 2)")
    parser.add_argument("--least", type=int, default=200, help="at least this many requests (default 200)")
    parser.add_argument("--gzip", action="store_true", help="accept gzip")
    parser.add_argument("--openmetrics", action="store_true", help="ask for OpenMetrics as Prometheus does")
    parser.add_argument("--paced", type=float, metavar="MEAN", help="a random wait of MEAN seconds on average first")
    parser.add_argument("--connections", type=int, default=1, help="scrapers at once, back to back (default 1)")
    parser.add_argument("--seed", type=int, default=1, help="of the random waits (default 1)")
    args = parser.parse_args()
    if args.connections > 1 and args.paced is not None:
        parser.error("--paced takes one connection")
    headers = {"Accept": ACCEPT_OPENMETRICS if args.openmetrics else "text/plain;version=0.0.4"}
    if args.gzip:
        headers["Accept-Encoding"] = "gzip"
    result = run(
        args.port,
        args.path,
        headers,
        seconds=args.seconds,
        least=args.least,
        paced=args.paced,
        connections=args.connections,
        seed=args.seed,
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
