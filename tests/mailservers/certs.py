"""A certificate authority for the tests' mail servers: the gateway trusts it through EMAIL_TLS_CA_FILE,
exactly as an operator would point it at a private CA, so TLS is verified, never switched off."""

from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class MailCerts:
    ca_file: Path  # PEM: what the client trusts
    cert_file: Path  # PEM: the server's chain for localhost / 127.0.0.1
    key_file: Path  # PEM: the server's private key

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


@functools.cache
def _ca() -> trustme.CA:
    return trustme.CA()


def make_certs(directory: Path) -> MailCerts:
    """The CA and a server certificate for localhost and 127.0.0.1, written to `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca()
    server = ca.issue_cert("localhost", "127.0.0.1")
    certs = MailCerts(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca.cert_pem.write_to_path(str(certs.ca_file))
    server.private_key_pem.write_to_path(str(certs.key_file))
    with certs.cert_file.open("wb") as out:
        for blob in server.cert_chain_pems:
            out.write(blob.bytes())
    return certs
