"""The one way our stand-in servers listen: a threaded HTTP server on 127.0.0.1.

A fake (the OIDC issuer, the brokers, the cloud APIs) subclasses
``LoopbackServer`` and names its request handler in ``handler_class``; it gets
``start``/``stop``, use as a context manager, and ``url``. ``port`` 0 picks a
free port; ``stop`` returns within about 10 ms (tests stop hundreds of them).

Real servers run as processes (the broker, OpenBao, moto) share ``free_port``,
``wait_until_healthy`` and ``stop_process``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TypeVar

_S = TypeVar("_S", bound="LoopbackServer")

#: how often a server's loop looks for ``stop``: what each stop waits, at most
POLL_INTERVAL = 0.01
#: how often ``wait_until_healthy`` asks a starting process
HEALTH_POLL_INTERVAL = 0.05


class _Server(ThreadingHTTPServer):
    #: listen backlog; the default 5 drops concurrent connects (their SYN is retried in 1 s)
    request_queue_size = 128


class LoopbackServer:
    host: str = "127.0.0.1"
    port: int = 0
    _server: ThreadingHTTPServer | None = None

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self: _S) -> _S:
        server = _Server((self.host, self.port), self.handler_class())
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# -- servers that run as their own process (the broker, OpenBao, moto) --------------


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_healthy(
    process: subprocess.Popen[bytes],
    url: str,
    *,
    name: str,
    timeout: float,
    error: type[Exception] = RuntimeError,
) -> None:
    """Poll ``url`` until it answers 200; raise ``error`` if ``process`` exits or time runs out.

    On a timeout the process is stopped. When the process exits, the tail of its
    stderr (if it is a pipe) goes into the message.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            detail = (
                process.stderr.read().decode(errors="replace")[-2000:] if process.stderr else ""
            )
            raise error(f"{name} exited with status {process.returncode}. {detail}".strip())
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(HEALTH_POLL_INTERVAL)
    stop_process(process)
    raise error(f"{name} did not answer {url} within {timeout:.0f} s")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s; close its pipes."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (Linux ``/proc``), children first."""
    found: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop(0)
        try:
            tasks = Path(f"/proc/{current}/task").iterdir()
            children = [
                int(child) for task in tasks for child in (task / "children").read_text().split()
            ]
        except OSError:
            continue
        found += children
        pending += children
    return found


def kill_tree(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a process and every descendant at once, as a power cut would (no
    shutdown handler runs), then reap it."""
    victims = [process.pid, *descendants(process.pid)]
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=10)
