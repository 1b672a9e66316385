"""The systemd notification client against real Unix datagram sockets (a path and an abstract name)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from exporter.serve.sdnotify import Notifier, socket_address
from tests.helpers import notify_listener


@pytest.fixture
def listener() -> Iterator[tuple[socket.socket, str]]:
    with notify_listener(timeout=10) as bound:
        yield bound


def test_without_a_service_manager_nothing_is_sent_and_nothing_fails() -> None:
    notifier = Notifier(None)
    assert not notifier.enabled
    assert notifier.ready("x") is False and notifier.stopping() is False


def test_ready_sends_one_datagram_with_the_status(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    assert Notifier(path).ready("polling 2 server(s)")
    assert sock.recv(4096) == b"READY=1\nSTATUS=polling 2 server(s)"


def test_an_abstract_socket_name_is_reached_through_a_leading_nul() -> None:
    name = f"@ite-test-{os.getpid()}"
    assert socket_address(name) == b"\0" + name[1:].encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(socket_address(name))
        sock.settimeout(10)
        assert Notifier(name).stopping()
        assert sock.recv(4096) == b"STOPPING=1\nSTATUS=shutting down"


def test_reloading_carries_the_monotonic_time_in_microseconds(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    Notifier(path).reloading()
    fields = dict(line.split("=", 1) for line in sock.recv(4096).decode().splitlines())
    assert fields["RELOADING"] == "1" and int(fields["MONOTONIC_USEC"]) > 0


def test_a_socket_that_is_gone_is_logged_and_never_raises() -> None:
    with capture_logs() as logs:
        assert Notifier("/nonexistent/notify").ready("x") is False
    assert [entry["event"] for entry in logs] == ["sd_notify_failed"]
