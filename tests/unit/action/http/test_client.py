"""The action's HTTP client against real loopback servers that answer scripted bytes."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from jobtoken import __version__
from jobtoken.action.deadline import Deadline
from jobtoken.action.errors import HttpError
from jobtoken.action.http.client import (
    Request,
    RetryPolicy,
    check_url,
    describe_url,
    fetch,
    form_request,
    send,
)

Reply = bytes | Callable[[bytes], bytes]


def ok(body: bytes = b'{"ok":true}', headers: str = "") -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{headers}\r\n"
    return head.encode() + body


def status(code: int, headers: str = "") -> bytes:
    return f"HTTP/1.1 {code} X\r\nContent-Length: 2\r\n{headers}\r\n{{}}".encode()


class ScriptedServer:
    """Accepts connections on 127.0.0.1; answers each with the next scripted reply."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.replies: list[Reply] = []
        self.received: list[bytes] = []
        self.delay = 0.0
        self.tls = tls
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    while len(body) < int(line.split(b":")[1]):
                        body += conn.recv(65536)
            request = head + b"\r\n\r\n" + body
            self.received.append(request)
            reply = self.replies.pop(0) if self.replies else ok()
            if self.delay:
                time.sleep(self.delay)
            conn.sendall(reply(request) if callable(reply) else reply)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    yield scripted
    scripted.close()


def deadline(seconds: float = 5.0) -> Deadline:
    return Deadline(seconds)


def test_a_get_sends_a_well_formed_request_and_reads_the_json_body(server: ScriptedServer) -> None:
    response = send(
        Request("GET", f"{server.url}/token?api-version=2.0", {"Authorization": "bearer x"}),
        deadline=deadline(),
    )

    assert response.status == 200
    assert response.json_object("test") == {"ok": True}
    assert response.headers["content-length"] == "11"
    head = server.received[0].decode()
    assert head.startswith("GET /token?api-version=2.0 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}\r\n" in head
    assert "Connection: close\r\n" in head
    assert "Authorization: bearer x\r\n" in head
    assert f"User-Agent: jobtoken-action/{__version__}\r\n" in head


def test_a_form_post_carries_the_encoded_fields(server: ScriptedServer) -> None:
    send(form_request(f"{server.url}/t", [("a", "1 2"), ("b", "x&y=")]), deadline=deadline())

    request = server.received[0]
    assert b"Content-Type: application/x-www-form-urlencoded\r\n" in request
    assert b"Content-Length: 16\r\n" in request
    assert request.endswith(b"\r\n\r\na=1+2&b=x%26y%3D")


def test_chunked_and_read_to_close_bodies(server: ScriptedServer) -> None:
    server.replies = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'4;ext=1\r\n{"a"\r\n3\r\n:1}\r\n0\r\nTrailer: x\r\n\r\n',
        b"HTTP/1.0 200 OK\r\n\r\n" + b'{"b":2}',
    ]
    assert send(Request("GET", server.url), deadline=deadline()).body == b'{"a":1}'
    assert send(Request("GET", server.url), deadline=deadline()).body == b'{"b":2}'


@pytest.mark.parametrize(
    "reply",
    [
        ok(b"x" * 101),
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n"
        + b"x" * 101
        + b"\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 101,
    ],
    ids=["content-length", "announced", "chunked", "to-close"],
)
def test_a_body_over_the_cap_is_refused(server: ScriptedServer, reply: bytes) -> None:
    server.replies = [reply]
    with pytest.raises(HttpError, match="is larger than 100 bytes"):
        send(Request("GET", server.url), deadline=deadline(), max_bytes=100)


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "did not answer with HTTP/1.x"),
        (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n", "more than 100 headers"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"y" * 40000 + b"\r\n\r\n", "a line longer than"),
        (b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n", "a malformed header"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "unsupported Transfer-Encoding"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            "conflicting Content-Length",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "closed the connection"),
        # '²' (latin-1 \xb2): str.isdigit() is True, int() raises ValueError
        (b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\nab", "invalid Content-Length"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: " + b"1" * 5000 + b"\r\n\r\n",
            "invalid Content-Length",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nab", "invalid Content-Length"),
    ],
)
def test_malformed_responses_are_errors(server: ScriptedServer, reply: bytes, message: str) -> None:
    server.replies = [reply]
    with pytest.raises(HttpError, match=message):
        send(Request("GET", server.url), deadline=deadline())


def test_a_slow_server_hits_the_deadline(server: ScriptedServer) -> None:
    server.delay = 2.0
    with pytest.raises(HttpError, match="timed out") as caught:
        send(Request("GET", server.url), deadline=Deadline(0.2))
    assert caught.value.retryable


def test_an_unreachable_host_is_a_retryable_error() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    with pytest.raises(HttpError, match=r"could not connect to http://127\.0\.0\.1") as caught:
        send(Request("GET", f"http://127.0.0.1:{port}/x?secret=s3cr3t"), deadline=deadline())
    assert caught.value.retryable
    assert "s3cr3t" not in caught.value.message


def test_fetch_retries_429_and_5xx_with_a_fresh_request_each_time(server: ScriptedServer) -> None:
    server.replies = [status(503), status(429), ok()]
    made: list[int] = []
    sleeps: list[float] = []

    def make() -> Request:
        made.append(len(made))
        return Request("GET", server.url, {"X-Attempt": str(len(made))})

    response = fetch(make, deadline=deadline(), sleep=sleeps.append)

    assert response.status == 200
    assert made == [0, 1, 2]
    assert [b"X-Attempt: %d" % n in r for n, r in enumerate(server.received, 1)] == [True] * 3
    # full jitter: uniform(0, min(max_delay, base * 2**attempt))
    assert 0 <= sleeps[0] <= 0.25
    assert 0 <= sleeps[1] <= 0.5


def test_fetch_honours_retry_after_up_to_the_maximum_delay(server: ScriptedServer) -> None:
    server.replies = [status(429, "Retry-After: 1\r\n"), ok()]
    sleeps: list[float] = []
    fetch(lambda: Request("GET", server.url), deadline=deadline(), sleep=sleeps.append)
    assert sleeps[0] >= 1.0


@pytest.mark.parametrize("value", [b"\xb2", b"1" * 5000, b"Wed, 21 Oct 2026 07:28:00 GMT"])
def test_a_retry_after_that_is_not_delay_seconds_is_ignored(
    server: ScriptedServer, value: bytes
) -> None:
    server.replies = [
        status(503).replace(b"\r\n\r\n", b"\r\nRetry-After: " + value + b"\r\n\r\n"),
        ok(),
    ]
    sleeps: list[float] = []
    response = fetch(lambda: Request("GET", server.url), deadline=deadline(), sleep=sleeps.append)
    assert response.status == 200
    assert len(sleeps) == 1
    assert 0 <= sleeps[0] <= 0.25  # the backoff's own full jitter


def test_fetch_does_not_retry_a_client_error(server: ScriptedServer) -> None:
    server.replies = [status(400), ok()]
    response = fetch(lambda: Request("GET", server.url), deadline=deadline(), sleep=lambda _: None)
    assert response.status == 400
    assert len(server.received) == 1


def test_fetch_returns_the_last_5xx_when_attempts_run_out(server: ScriptedServer) -> None:
    server.replies = [status(502)] * 3
    policy = RetryPolicy(attempts=3)
    response = fetch(
        lambda: Request("GET", server.url), deadline=deadline(), retry=policy, sleep=lambda _: None
    )
    assert response.status == 502
    assert len(server.received) == 3


def test_fetch_stops_retrying_when_the_deadline_would_pass(server: ScriptedServer) -> None:
    server.replies = [status(503, "Retry-After: 3\r\n"), ok()]
    sleeps: list[float] = []
    response = fetch(
        lambda: Request("GET", server.url), deadline=Deadline(1.0), sleep=sleeps.append
    )
    assert response.status == 503
    assert sleeps == []


def test_fetch_retries_network_errors_then_raises() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    sleeps: list[float] = []
    with pytest.raises(HttpError, match="could not connect"):
        fetch(
            lambda: Request("GET", f"http://127.0.0.1:{port}"),
            deadline=deadline(),
            sleep=sleeps.append,
        )
    assert len(sleeps) == 3


def test_time_running_out_between_retries_reports_the_cause_not_the_clock() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    budget = Deadline(1.0)

    def slow_sleep(delay: float) -> None:  # a loaded machine: the pause eats the budget
        time.sleep(budget.remaining() + 0.01)

    with pytest.raises(HttpError, match="could not connect") as caught:
        fetch(lambda: Request("GET", f"http://127.0.0.1:{port}"), deadline=budget, sleep=slow_sleep)
    assert "timed out before calling" not in caught.value.message


def test_a_same_origin_redirect_of_a_get_is_followed(server: ScriptedServer) -> None:
    server.replies = [status(302, "Location: /final\r\n"), ok()]
    response = send(Request("GET", f"{server.url}/start"), deadline=deadline())
    assert response.status == 200
    assert response.url == f"{server.url}/final"
    assert server.received[1].startswith(b"GET /final HTTP/1.1")


def test_a_redirect_to_another_host_is_refused(server: ScriptedServer) -> None:
    server.replies = [status(302, f"Location: http://localhost:{server.port}/x\r\n")]
    with pytest.raises(HttpError, match="redirected to another host or scheme"):
        send(Request("GET", server.url), deadline=deadline())
    assert len(server.received) == 1


def test_a_redirect_of_a_post_is_refused(server: ScriptedServer) -> None:
    server.replies = [status(307, "Location: /other\r\n")]
    with pytest.raises(HttpError, match="answered with a redirect"):
        send(form_request(server.url, {"a": "b"}), deadline=deadline())
    assert len(server.received) == 1


def test_a_header_with_a_line_break_is_refused_without_showing_it() -> None:
    request = Request("GET", "http://127.0.0.1:9/", {"Authorization": "bearer s3cr3t\r\nX: y"})
    with pytest.raises(HttpError) as caught:
        send(request, deadline=deadline())
    assert "line break" in caught.value.message
    assert "s3cr3t" not in caught.value.message


@pytest.mark.parametrize(
    "url",
    [
        "http://tokens.example.com",
        "http://10.0.0.1",
        "https://u@x.example",
        "file:///etc/passwd",
        "http://127.0.0.\u00b2",  # not an IP literal ('²'.isdigit(), int('²') raises)
        "http://0127.0.0.1",
        "http://127.0.0.1.1",
    ],
)
def test_urls_that_are_not_https_or_loopback_are_refused_before_connecting(url: str) -> None:
    with pytest.raises(ValueError, match="must"):
        check_url(url)
    with pytest.raises(HttpError, match="refusing to call"):
        send(Request("GET", url), deadline=deadline())


def test_describe_url_drops_query_and_user_info() -> None:
    assert describe_url("https://a.example:8443/p/q?token=s#f") == "https://a.example:8443/p/q"


# -- TLS ------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[ScriptedServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    scripted = ScriptedServer(tls=context)
    yield scripted
    scripted.close()


def test_https_with_a_trusted_certificate_works(
    tls_server: ScriptedServer, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    response = send(Request("GET", f"https://localhost:{tls_server.port}/x"), deadline=deadline())
    assert response.json_object("test") == {"ok": True}


def test_https_with_an_untrusted_certificate_fails_and_is_not_retried(
    tls_server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "empty.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    with pytest.raises(HttpError, match="TLS with https://localhost") as caught:
        send(Request("GET", f"https://localhost:{tls_server.port}/x"), deadline=deadline())
    assert not caught.value.retryable
    assert tls_server.received == []
