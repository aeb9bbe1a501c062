"""Throw-away certificates for TLS tests, made with the ``openssl`` command at test time.

``make_pki(directory)`` writes a CA, a server certificate for ``localhost`` / ``127.0.0.1``, a
client certificate (CN ``client-a`` with DNS and SPIFFE URI SANs), a second server pair (to test
reloading), and a *foreign* CA with a client certificate of its own (to test refusal).
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclasses.dataclass(frozen=True)
class Pki:
    dir: Path

    def __getattr__(self, name: str) -> Path:  # pki.ca_pem -> <dir>/ca.pem, pki.client_key -> client.key
        stem, _, suffix = name.rpartition("_")
        return self.dir / f"{stem.replace('_', '-')}.{suffix}"

    def read(self, name: str) -> bytes:
        return (self.dir / name).read_bytes()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _ca(name: str, d: Path) -> None:
    _openssl("req", "-x509", *_EC, "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
             "-subj", f"/CN={name}", cwd=d)  # fmt: skip


def _leaf(name: str, ca: str, cn: str, san: str, d: Path) -> None:
    _openssl("req", *_EC, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
    (d / f"{name}.ext").write_text(f"subjectAltName={san}\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)  # fmt: skip


def make_pki(d: Path) -> Pki:
    _ca("ca", d)
    _ca("foreign-ca", d)
    _leaf("server", "ca", "localhost", "DNS:localhost,IP:127.0.0.1", d)
    _leaf("server2", "ca", "localhost-2", "DNS:localhost,IP:127.0.0.1", d)
    _leaf("client", "ca", "client-a", "DNS:client-a.test,URI:spiffe://test/client-a", d)
    _leaf("foreign-client", "foreign-ca", "client-a", "DNS:client-a.test", d)
    return Pki(d)
