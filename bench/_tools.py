"""What the gRPC benchmark needs beyond the project's venv, installed on first use (never by hand).

* ``h2load`` from Debian's ``nghttp2-client`` (apt);
* ``py-spy`` (pip, into the project's venv) for the profile;
* python-cqrs 5.3 with grpcio/protobuf in its own venv, since it has the same import name as ours.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYCQRS_VENV = ROOT / "bench" / ".venvs" / "python-cqrs-grpc"
PYCQRS_VERSION = "5.3.0"


def _run(cmd: list[str], **kwargs: object) -> None:
    print("bench: $", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, **kwargs)  # type: ignore[call-overload]


def ensure_h2load() -> str:
    """The path of h2load; installs nghttp2-client with apt-get when it is missing."""
    found = shutil.which("h2load")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run([*sudo, "apt-get", "update", "-qq"], env=env)
    _run([*sudo, "apt-get", "install", "-y", "-qq", "nghttp2-client"], env=env)
    found = shutil.which("h2load")
    if not found:
        raise SystemExit("bench: h2load is still missing after installing nghttp2-client")
    return found


def ensure_py_spy() -> str:
    """The path of py-spy in the project's venv (pip-installed when missing)."""
    path = Path(sys.executable).parent / "py-spy"
    if not path.exists():
        _run([sys.executable, "-m", "pip", "install", "--quiet", "py-spy"])
    return str(path)


def ensure_pycqrs_python() -> str:
    """The interpreter of a venv holding python-cqrs 5.3 and this venv's grpcio/protobuf versions.

    Built from this interpreter's Python version, and built anew when that or a pin changes, so the
    two libraries are always compared on the same Python.
    """
    from importlib import metadata

    python = PYCQRS_VENV / "bin" / "python"
    marker = PYCQRS_VENV / ".installed"
    pins = [
        f"python {sys.version_info.major}.{sys.version_info.minor}",
        f"python-cqrs=={PYCQRS_VERSION}",
        f"grpcio=={metadata.version('grpcio')}",
        f"protobuf=={metadata.version('protobuf')}",
    ]
    wanted = "\n".join(pins) + "\n"
    if marker.exists() and marker.read_text() == wanted:
        return str(python)
    print(f"bench: building {PYCQRS_VENV.relative_to(ROOT)} ({', '.join(pins)})", flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(PYCQRS_VENV)
    _run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    _run([str(python), "-m", "pip", "install", "--quiet", *pins[1:]])
    marker.write_text(wanted)
    return str(python)


if __name__ == "__main__":
    print(ensure_h2load())
    print(ensure_py_spy())
    print(ensure_pycqrs_python())
