"""send_mail against a real SMTP server (aiosmtpd on 127.0.0.1), with and without STARTTLS."""

from __future__ import annotations

import datetime
import email
import email.policy
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from resources import mailer
from resources.mailer import Delivery, MailError, send_mail
from resources.settings import get_settings

LINK = "http://127.0.0.1:8000/accept-invitation#token=Zm9vYmFyYmF6cXV4"
USER, PASSWORD = "mailer", "s3cret-smtp-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Inbox:
    """What the server received."""

    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


@dataclass
class Server:
    port: int
    inbox: Inbox


def _start(**kwargs: Any) -> Iterator[Server]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield Server(port, inbox)
    finally:
        controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[Server]:
    """A plain SMTP server that asks for a login (allowed without TLS on this local link)."""
    yield from _start(authenticator=_authenticator, auth_require_tls=False)


def _tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate it signed for 127.0.0.1: (ca.pem, cert.pem, key.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "privatune test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem, cert_pem, key_pem = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_pem, cert_pem, key_pem


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    """An SMTP server offering STARTTLS with a certificate from a private CA: (server, ca.pem)."""
    ca_pem, cert_pem, key_pem = _tls_files(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_pem, key_pem)
    for server in _start(tls_context=context, require_starttls=True):
        yield server, ca_pem


def _configure(monkeypatch: pytest.MonkeyPatch, port: int, **env: str) -> None:
    monkeypatch.setenv("PRIVATUNE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("PRIVATUNE_SMTP_PORT", str(port))
    monkeypatch.setenv("PRIVATUNE_SMTP_STARTTLS", "0")
    monkeypatch.setenv("PRIVATUNE_SMTP_FROM", "privatune <no-reply@privatune.example.com>")
    for name, value in env.items():
        monkeypatch.setenv(f"PRIVATUNE_SMTP_{name.upper()}", value)
    get_settings.cache_clear()


def _parsed(raw: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def test_a_message_reaches_the_server(monkeypatch: pytest.MonkeyPatch, smtp_server: Server) -> None:
    _configure(monkeypatch, smtp_server.port)
    delivery = send_mail(
        "ada@example.com",
        "You are invited to ACME on privatune",
        "Grace invited you to join ACME as a member.",
        link=LINK,
    )
    assert delivery == Delivery(sent=True, link=None)
    [(mail_from, rcpt_tos, raw)] = smtp_server.inbox.messages
    assert mail_from == "no-reply@privatune.example.com" and rcpt_tos == ["ada@example.com"]
    message = _parsed(raw)
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "You are invited to ACME on privatune"
    assert message["From"] == "privatune <no-reply@privatune.example.com>"
    assert message["Message-ID"].endswith("@privatune.example.com>")
    sent_at = email.utils.parsedate_to_datetime(message["Date"])
    assert abs((datetime.datetime.now(datetime.UTC) - sent_at).total_seconds()) < 60
    body = message.get_content()
    assert "Grace invited you to join ACME as a member." in body and LINK in body


def test_a_body_that_holds_the_link_is_sent_as_written(
    monkeypatch: pytest.MonkeyPatch, smtp_server: Server
) -> None:
    _configure(monkeypatch, smtp_server.port)
    send_mail("ada@example.com", "Reset your password", f"Open {LINK} within an hour.", LINK)
    body = _parsed(smtp_server.inbox.messages[0][2]).get_content()
    assert body.count(LINK) == 1 and body.startswith(f"Open {LINK} within an hour.")


def test_login_with_the_configured_account(
    monkeypatch: pytest.MonkeyPatch, smtp_server: Server
) -> None:
    _configure(monkeypatch, smtp_server.port, username=USER, password=PASSWORD)
    assert send_mail("ada@example.com", "Hello", "Body").sent
    assert len(smtp_server.inbox.messages) == 1


def test_a_refused_login_says_which_settings_to_check(
    monkeypatch: pytest.MonkeyPatch, smtp_server: Server
) -> None:
    _configure(monkeypatch, smtp_server.port, username=USER, password="wrong")
    with pytest.raises(MailError) as caught:
        send_mail("ada@example.com", "Hello", "Body")
    message = str(caught.value)
    assert f"127.0.0.1:{smtp_server.port}" in message and f"login as {USER} failed" in message
    assert "PRIVATUNE_SMTP_PASSWORD" in message and "wrong" not in message
    assert smtp_server.inbox.messages == []


def test_starttls_to_a_server_that_does_not_offer_it_fails_clearly(
    monkeypatch: pytest.MonkeyPatch, smtp_server: Server
) -> None:
    _configure(monkeypatch, smtp_server.port, starttls="1")
    with pytest.raises(MailError, match=r"STARTTLS failed: the server does not offer it"):
        send_mail("ada@example.com", "Hello", "Body")
    assert smtp_server.inbox.messages == []


def test_starttls_with_a_trusted_certificate(
    monkeypatch: pytest.MonkeyPatch, tls_server: tuple[Server, Path]
) -> None:
    server, ca_pem = tls_server
    _configure(monkeypatch, server.port, starttls="1")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_pem))
    assert send_mail("ada@example.com", "Over TLS", "Body", LINK).sent
    assert LINK in _parsed(server.inbox.messages[0][2]).get_content()


def test_starttls_refuses_an_untrusted_certificate(
    monkeypatch: pytest.MonkeyPatch, tls_server: tuple[Server, Path], tmp_path: Path
) -> None:
    server, _ = tls_server
    _configure(monkeypatch, server.port, starttls="1")
    (tmp_path / "other").mkdir()
    other_ca, _, _ = _tls_files(tmp_path / "other")  # a CA that did not sign the server's
    monkeypatch.setenv("SSL_CERT_FILE", str(other_ca))
    with pytest.raises(MailError, match=r"STARTTLS failed: .*CERTIFICATE_VERIFY_FAILED"):
        send_mail("ada@example.com", "Over TLS", "Body")
    assert server.inbox.messages == []


def test_an_unreachable_server_fails_quickly_with_the_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()  # nothing listens there
    _configure(monkeypatch, port)
    started = time.monotonic()
    with pytest.raises(MailError) as caught:
        send_mail("ada@example.com", "Hello", "Body", LINK)
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert f"mail server 127.0.0.1:{port}: connecting failed" in message
    assert "PRIVATUNE_SMTP_HOST" in message


def test_a_server_that_never_answers_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts connections, never sends a greeting
        _configure(monkeypatch, silent.getsockname()[1])
        monkeypatch.setattr(mailer, "SMTP_TIMEOUT_S", 1)
        started = time.monotonic()
        with pytest.raises(MailError, match="connecting failed.*timed out"):
            send_mail("ada@example.com", "Hello", "Body")
        assert time.monotonic() - started < 5


def test_without_smtp_the_link_is_logged_and_returned(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("PRIVATUNE_SMTP_HOST", raising=False)
    get_settings.cache_clear()
    caplog.set_level(logging.INFO, logger="privatune.mail")
    delivery = send_mail("ada@example.com", "Reset your password", "Open the link.", LINK)
    assert delivery == Delivery(sent=False, link=LINK)
    [record] = caplog.records
    assert record.name == "privatune.mail" and record.levelno == logging.WARNING
    assert "ada@example.com" in record.getMessage()
    assert "Reset your password" in record.getMessage()
    assert record.link == LINK  # type: ignore[attr-defined]
    assert LINK not in record.getMessage()
