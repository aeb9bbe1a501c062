"""Server TLS (and mutual TLS) from PEM files, checked before binding and reloadable on SIGHUP.

The files are checked with the standard library's ``ssl`` module before grpc sees them, because
grpc's own failure for a bad certificate or a key of another certificate is a core log line and
a server that accepts connections and fails every handshake; an operator should instead get a
refusal to start that names the file and what is wrong with it.

Reload: the credentials are grpc's *dynamic* SSL server credentials. grpc asks
:meth:`ServerTls._fetch` for a new configuration on each new handshake; :meth:`ServerTls.reload`
(the CLI calls it on SIGHUP) re-reads and re-checks the files and, if they are good, hands the new
pair to the next handshake. Connections already open keep their session, so in-flight streams are
not dropped; files that fail the check are logged and the current pair stays in use.
"""

from __future__ import annotations

import dataclasses
import logging
import ssl
import threading
from pathlib import Path

import grpc

from server.routing import StartupError

logger = logging.getLogger("server.tls")


class TlsConfigError(StartupError):
    """The TLS files cannot be used; each problem names the file and what would fix it."""


@dataclasses.dataclass(frozen=True, slots=True)
class TlsFiles:
    """The PEM contents the server presents (and trusts, for client certificates)."""

    cert_chain: bytes
    private_key: bytes
    client_ca: bytes | None

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(self.private_key, self.cert_chain)], root_certificates=self.client_ca
        )


def _read(label: str, path: str, problems: list[str]) -> bytes | None:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        problems.append(f"{label} {path}: no such file")
        return None
    except OSError as exc:
        problems.append(f"{label} {path}: cannot be read ({exc.strerror or type(exc).__name__})")
        return None
    if b"-----BEGIN " not in data:
        problems.append(f"{label} {path}: not a PEM file (expected a '-----BEGIN ...' block)")
        return None
    return data


def load_tls_files(cert: str | None, key: str | None, client_ca: str | None) -> TlsFiles:
    """Read and check the files; raise :class:`TlsConfigError` listing every problem.

    Checks: cert and key come together, both are readable PEM, the key belongs to the certificate,
    and the client CA (mutual TLS) is a readable PEM bundle of certificates.
    """
    problems: list[str] = []
    if (cert is None) != (key is None):
        given, missing = ("--tls-cert", "--tls-key") if cert else ("--tls-key", "--tls-cert")
        problems.append(f"{given} was given without {missing}: TLS needs both the certificate and its key")
    if client_ca is not None and cert is None:
        problems.append("--tls-client-ca needs --tls-cert and --tls-key: mutual TLS runs over TLS")
    if problems or cert is None or key is None:
        raise TlsConfigError(problems or ["no TLS certificate configured"])
    cert_pem = _read("--tls-cert", cert, problems)
    key_pem = _read("--tls-key", key, problems)
    ca_pem = _read("--tls-client-ca", client_ca, problems) if client_ca is not None else None
    if cert_pem is not None and key_pem is not None:
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
        except ssl.SSLError as exc:
            if "KEY_VALUES_MISMATCH" in str(exc):
                problems.append(f"--tls-key {key} is not the private key of the certificate in {cert}")
            else:
                problems.append(
                    f"--tls-cert {cert} / --tls-key {key}: not a usable certificate and unencrypted "
                    f"private key ({exc.reason or 'unreadable PEM'})"
                )
    if ca_pem is not None:
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(cadata=ca_pem.decode("ascii"))
        except (ssl.SSLError, UnicodeDecodeError, ValueError):
            problems.append(f"--tls-client-ca {client_ca}: holds no usable CA certificate")
    if problems or cert_pem is None or key_pem is None:
        raise TlsConfigError(problems)
    return TlsFiles(cert_pem, key_pem, ca_pem)


class ServerTls:
    """The server's TLS credentials, with the certificate pair swappable while serving."""

    def __init__(self, cert: str | None, key: str | None, client_ca: str | None = None) -> None:
        self._paths = (cert, key, client_ca)
        self.files = load_tls_files(cert, key, client_ca)
        self._pending: grpc.ServerCertificateConfiguration | None = None
        self._lock = threading.Lock()  # grpc calls _fetch from its own threads

    @property
    def mutual(self) -> bool:
        """True when client certificates are required and verified against the client CA."""
        return self.files.client_ca is not None

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self.files.configuration(),
            self._fetch,  # type: ignore[arg-type]  # grpc takes None as "no change"; the stubs do not say so
            require_client_authentication=self.mutual,
        )

    def reload(self) -> bool:
        """Re-read the files; new handshakes use them if they pass the checks. True on success."""
        try:
            files = load_tls_files(*self._paths)
        except TlsConfigError as exc:
            logger.error("TLS reload failed, still serving the previous certificate: %s", exc)
            return False
        if (files.client_ca is None) != (self.files.client_ca is None):  # pragma: no cover - same paths
            logger.error("TLS reload cannot switch mutual TLS on or off; restart the server")
            return False
        with self._lock:
            self.files = files
            self._pending = files.configuration()
        logger.info("TLS certificate reloaded; new connections use it")
        return True

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        with self._lock:
            pending, self._pending = self._pending, None
        return pending
