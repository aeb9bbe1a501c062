"""Generates the benchmark's protobuf/grpc modules from bench/protos (the single source of truth)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = ROOT / "bench" / "protos"
GEN = ROOT / "bench" / "results" / "tmp" / "gen"  # git-ignored


def generate() -> Path:
    """Run grpc_tools.protoc when the .proto is newer than the generated code; return the gen dir."""
    protos = sorted(PROTO_ROOT.rglob("*.proto"))
    marker = GEN / ".generated"
    newest = max(p.stat().st_mtime for p in protos)
    if marker.exists() and marker.stat().st_mtime >= newest:
        return GEN
    GEN.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"--python_out={GEN}",
            f"--grpc_python_out={GEN}",
            *map(str, protos),
        ],
        check=True,
    )
    marker.touch()
    return GEN
