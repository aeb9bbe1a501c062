"""Dataclasses mirroring tests/protos/codectest/v1/codec_test.proto, and its generated module.

``codec_test_pb2`` is imported from ``gen/`` when ``make proto`` built it there; otherwise it
is generated into a temporary folder, so the codec tests never depend on build order.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

PROTO_ROOT = Path(__file__).parent
PROTO = "codectest/v1/codec_test.proto"


def _load_pb2() -> ModuleType:
    try:
        return importlib.import_module("codectest.v1.codec_test_pb2")
    except ImportError:
        pass
    from importlib.resources import files

    from grpc_tools import protoc

    out = tempfile.mkdtemp(prefix="codectest-")
    include = str(files("grpc_tools") / "_proto")
    code = protoc.main(["protoc", f"-I{PROTO_ROOT}", f"-I{include}", f"--python_out={out}", PROTO])
    if code != 0:
        raise RuntimeError(f"protoc failed on {PROTO} ({code})")
    sys.path.insert(0, out)
    return importlib.import_module("codectest.v1.codec_test_pb2")


pb = _load_pb2()


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class FullNameColor(enum.Enum):
    """Members spelled like the proto values, zero value included."""

    COLOR_UNSPECIFIED = 0
    COLOR_RED = 1
    COLOR_GREEN = 2
    COLOR_BLUE = 3


@dataclasses.dataclass(kw_only=True)
class Point:
    x: int = 0
    y: int = 0
    label: str = ""


@dataclasses.dataclass(kw_only=True)
class Scalars:
    i32: int
    i64: int
    u32: int
    u64: int
    s32: int
    s64: int
    f32: int
    f64: int
    sf32: int
    sf64: int
    dbl: float
    flt: float
    flag: bool
    text: str
    data: bytes


@dataclasses.dataclass(kw_only=True)
class FarScalars(Scalars):
    """The same fields as :class:`Scalars`, for ``FarScalars`` (long tags)."""


@dataclasses.dataclass(kw_only=True)
class Everything:
    name: str = ""
    blob: bytes = b""
    maybe_count: int | None = None
    maybe_text: str | None = None
    color: Color = Color.RED
    maybe_color: Color | None = None
    tags: list[str] = dataclasses.field(default_factory=list)
    colors: list[Color] = dataclasses.field(default_factory=list)
    origin: Point = dataclasses.field(default_factory=Point)
    maybe_point: Point | None = None
    path: list[Point] = dataclasses.field(default_factory=list)
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    named_points: dict[str, Point] = dataclasses.field(default_factory=dict)
    color_by_id: dict[int, Color] = dataclasses.field(default_factory=dict)
    created_at: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    maybe_at: datetime | None = None
    elapsed: timedelta = timedelta()
    stamps: list[datetime] = dataclasses.field(default_factory=list)
    nick: str | None = None
    big: int | None = None
    ok: bool | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    ratio: float = 0.0


@dataclasses.dataclass(kw_only=True)
class EnumViews:
    as_int: int
    as_name: str


@dataclasses.dataclass(kw_only=True)
class Tree:
    name: str
    children: list[Tree] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(kw_only=True)
class Choice:
    word: str | None = None
    number: int | None = None


@dataclasses.dataclass(kw_only=True)
class SmallResult:
    file_id: str
    status: str
    processed_at: datetime
    index: int
    total: int


@dataclasses.dataclass(kw_only=True)
class Keyword:
    from_: str


@dataclasses.dataclass(kw_only=True)
class Shade:
    color: Color


@dataclasses.dataclass(kw_only=True)
class Palette:
    shades: list[Shade]


@dataclasses.dataclass(kw_only=True)
class Holder:
    palette: Palette | None = None


@dataclasses.dataclass(kw_only=True)
class Sparse:
    late: bytes = b""
    middle: int = 0
    early: str = ""
    ratio: float = 0.0
