"""HTTPS webhooks: the request goes to the address resolved once, while TLS speaks the URL's
host name (SNI) and checks the certificate against it. A real TLS receiver on 127.0.0.1 with
a certificate authority made for the test (the openssl command line)."""

import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.core.webhook_sender import WebhookRequest, WebhookSender
from tests.webhook_receiver import Receiver, Reply

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NAME = "hooks.example.test"


def openssl(*arguments: str, cwd: Path) -> None:
    subprocess.run(["openssl", *arguments], cwd=cwd, check=True, capture_output=True)


def certificate_authority(directory: Path) -> Path:
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "1", "-subj", "/CN=webhook test CA", cwd=directory,
    )  # fmt: skip
    return directory / "ca.pem"


def server_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
        "-subj", f"/CN={name}", cwd=directory,
    )  # fmt: skip
    (directory / f"{name}.ext").write_text(f"subjectAltName=DNS:{name}\n")
    openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", f"{name}.pem", "-days", "1", "-extfile", f"{name}.ext",
        cwd=directory,
    )  # fmt: skip
    return directory / f"{name}.pem", directory / f"{name}.key"


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    return certificate_authority(tmp_path)


async def tls_receiver(tmp_path: Path, certified_name: str) -> Receiver:
    certificate, key = server_certificate(tmp_path, certified_name)
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(certificate, key)
    receiver = Receiver(tls=server_side)
    receiver.start()
    return receiver


@pytest.fixture
async def receiver(tmp_path: Path, ca: Path) -> AsyncIterator[Receiver]:
    receiver = await tls_receiver(tmp_path, NAME)
    yield receiver
    receiver.stop()


def sender(ca: Path) -> WebhookSender:
    async def resolve(host: str, port: int) -> list[str]:
        assert host == NAME
        return ["127.0.0.1"]

    trusted = ssl.create_default_context(cafile=str(ca))
    return WebhookSender(timeout=5, allow_private=True, resolver=resolve, tls_context=trusted)


async def test_sni_and_certificate_are_the_urls_host_while_the_address_is_the_resolved_one(
    receiver: Receiver, ca: Path
) -> None:
    receiver.expect("/tls", SECRET, Reply(200))
    webhooks = sender(ca)
    try:
        request = WebhookRequest(receiver.url("/tls", NAME), SECRET, "42", b'{"type":"ping"}')
        result = await webhooks.send(request)
    finally:
        await webhooks.aclose()

    assert result.ok, result.error
    assert receiver.server_names == [NAME]
    [arrival] = receiver.arrivals
    assert arrival.headers["host"] == f"{NAME}:{receiver.port}"
    assert arrival.verified, arrival.error


async def test_a_certificate_for_another_name_is_refused(tmp_path: Path, ca: Path) -> None:
    impostor = await tls_receiver(tmp_path, "someone-else.example.test")
    impostor.expect("/tls", SECRET, Reply(200))
    webhooks = sender(ca)
    try:
        request = WebhookRequest(impostor.url("/tls", NAME), SECRET, "42", b"{}")
        result = await webhooks.send(request)
    finally:
        await webhooks.aclose()
        impostor.stop()

    assert not result.ok
    assert result.error is not None
    assert "CERTIFICATE_VERIFY_FAILED" in result.error
    assert impostor.arrivals == []
