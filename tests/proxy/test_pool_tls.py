"""The pooled upstream client over TLS: verification, reuse, and the default trust store."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from tests.proxy.scripted_upstream import (
    Clients,
    Servers,
    answer,
    failing_fetch,
    fetch,
    response,
)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def no_trust_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default trust store is the system's, whatever the environment running the tests."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


def server_context(ca: trustme.CA, *identities: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*identities).configure_cert(context)
    return context


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_tls_exchange_and_reuse(servers: Servers, clients: Clients, ca: trustme.CA) -> None:
    server = await servers.start(
        answer(lambda req: response(req.target.encode())),
        server_context(ca, "127.0.0.1", "localhost"),
    )
    client = clients(ssl_context=trusting(ca))
    endpoint = server.endpoint("/base")
    assert endpoint.url.startswith("https://")
    for i in range(2):
        resp, body = await fetch(client, endpoint, "POST", f"/v1/{i}", [], b"{}")
        assert (resp.status, body) == (200, b"/base/v1/%d" % i)
    assert server.accepted == 1
    assert [req.header("host") for req in server.requests] == [f"127.0.0.1:{server.port}"] * 2
    assert [req.body for req in server.requests] == [b"{}", b"{}"]


@pytest.mark.usefixtures("no_trust_env")
async def test_default_context_rejects_an_unknown_ca(
    servers: Servers, clients: Clients, ca: trustme.CA
) -> None:
    server = await servers.start(answer(response(b"ok")), server_context(ca, "127.0.0.1"))
    error = await failing_fetch(clients(), server.endpoint(), "POST", b"{}")
    assert (error.kind, error.sent) == ("connect", False)
    assert server.requests == []


async def test_certificate_for_another_host_is_rejected(
    servers: Servers, clients: Clients, ca: trustme.CA
) -> None:
    server = await servers.start(answer(response(b"ok")), server_context(ca, "example.test"))
    error = await failing_fetch(clients(ssl_context=trusting(ca)), server.endpoint())
    assert (error.kind, error.sent) == ("connect", False)
    assert server.requests == []


async def test_default_context_honours_ssl_cert_file(
    servers: Servers,
    clients: Clients,
    ca: trustme.CA,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = await servers.start(answer(response(b"ok")), server_context(ca, "127.0.0.1"))
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(pem))
    resp, body = await fetch(clients(), server.endpoint())
    assert (resp.status, body) == (200, b"ok")
