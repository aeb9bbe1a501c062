"""protoc-gen-cqrs: the classes `make proto` generates fit the codec, serve RPCs with no mirror class,
and hand-written classes keep working (and keep being checked) beside them."""

from __future__ import annotations

import dataclasses
import functools
import subprocess
import sys
import typing
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf import (
    any_pb2,
    descriptor_pb2,
    duration_pb2,
    empty_pb2,
    field_mask_pb2,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)
from google.protobuf.compiler import plugin_pb2
from google.protobuf.descriptor import Descriptor
from sample.files.v1 import files_cqrs, files_pb2

import cqrs
from codectest.v1 import codec_test_cqrs, codec_test_pb2
from cqrs.requests import bootstrap
from cqrs.requests.request_handler import RequestHandler, StreamingRequestHandler
from demo.files.v1 import files_cqrs as demo_files_cqrs
from demo.files.v1 import files_pb2 as demo_files_pb2
from emptytest.v1 import empty_test_cqrs, empty_test_pb2
from gentest.v1 import common_cqrs, common_pb2, gen_test_pb2, gen_test_pb2_grpc
from gentest.v1 import gen_test_cqrs as gen
from server import App, StartupError
from server.codec import check_fields, codec_for
from server.protoc_gen import generate, wkt
from server.testing import serve_for_test
from streamtest.v1 import stream_test_cqrs, stream_test_pb2

ROOT = Path(__file__).resolve().parents[2]
pb = gen_test_pb2

# every module `make proto` generated from tests/protos, with its protobuf twin
GENERATED = [
    (gen, gen_test_pb2),
    (common_cqrs, common_pb2),
    (codec_test_cqrs, codec_test_pb2),
    (empty_test_cqrs, empty_test_pb2),
    (files_cqrs, files_pb2),
    (stream_test_cqrs, stream_test_pb2),
    (demo_files_cqrs, demo_files_pb2),
]


def _messages(descriptors: typing.Iterable[Descriptor]) -> Iterator[Descriptor]:
    for descriptor in descriptors:
        if not descriptor.GetOptions().map_entry:
            yield descriptor
            yield from _messages(descriptor.nested_types)


def _class_of(module: ModuleType, descriptor: Descriptor) -> type:
    path = descriptor.full_name.removeprefix(descriptor.file.package + ".")
    cls: type = functools.reduce(getattr, path.split("."), module)
    return cls


def _pairs() -> Iterator[tuple[str, Descriptor, type]]:
    for module, pb2 in GENERATED:
        for descriptor in _messages(pb2.DESCRIPTOR.message_types_by_name.values()):
            yield descriptor.full_name, descriptor, _class_of(module, descriptor)


@pytest.mark.parametrize(
    ("name", "descriptor", "cls"), list(_pairs()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_generated_class_constructs_bare_and_fits_its_message(
    name: str, descriptor: Descriptor, cls: type
) -> None:
    assert cls.__name__ == descriptor.name
    assert dataclasses.is_dataclass(cls())
    assert check_fields(descriptor, cls, where=name) == []


def test_base_classes_follow_how_rpcs_use_each_message() -> None:
    assert issubclass(gen.GetThing, cqrs.Request) and not issubclass(gen.GetThing, cqrs.Response)
    # Thing is returned by Get and taken by Put; Everything is taken and returned by Echo
    for both in (gen.Thing, gen.Everything, wkt.Empty):
        assert issubclass(both, cqrs.Request) and issubclass(both, cqrs.Response)
    # Point only appears inside other messages: a plain dataclass
    assert not issubclass(gen.Point, cqrs.Request | cqrs.Response)
    assert dataclasses.is_dataclass(gen.Point) and gen.Point(x=1) == gen.Point(x=1, y=0)
    with pytest.raises(TypeError):
        gen.Point(1, 2)  # type: ignore[misc]  # keyword-only, like every cqrs model


def test_enums_are_int_enums_named_without_the_conventional_prefix() -> None:
    assert gen.Color.RED == pb.COLOR_RED and gen.Color.UNSPECIFIED == 0
    assert [m.name for m in gen.Mood] == ["CALM", "ANGRY"]  # no MOOD_ prefix: names kept
    assert gen.Everything.Kind.LARGE == pb.Everything.KIND_LARGE
    assert gen.Everything.Kind.__qualname__ == "Everything.Kind"
    assert gen.Everything.Inner.__qualname__ == "Everything.Inner"
    bare = gen.Everything()
    assert (bare.color, bare.mood, bare.kind) == (
        gen.Color.UNSPECIFIED,
        gen.Mood.CALM,
        gen.Everything.Kind.UNSPECIFIED,
    )


def test_fields_named_like_builtins_do_not_shadow_the_types_of_later_fields() -> None:
    shadows = gen.Shadows(list=["a"], more=[1])
    assert shadows.more_map == {} and gen.Shadows().more == []
    codec = codec_for(pb.Shadows, gen.Shadows)
    assert codec.decode(codec.encode(shadows)) == shadows


def _full_message() -> gen_test_pb2.Everything:
    message = pb.Everything(
        i32=-1, i64=-(2**40), u32=2**32 - 1, u64=2**64 - 1, s32=-5, s64=-6, f32=7, f64=8, sf32=-9, sf64=-10,
        dbl=1.5, flt=0.25, flag=True, text="héllo", data=b"\x00\xff",
        maybe_count=0, maybe_text="", color=pb.COLOR_RED, maybe_color=pb.COLOR_UNSPECIFIED, mood=pb.ANGRY,
        kind=pb.Everything.KIND_LARGE, tags=["a", "b"], colors=[pb.COLOR_GREEN, pb.COLOR_RED],
        path=[pb.Point(x=1, y=2), pb.Point()], origin=pb.Point(),
        inner=pb.Everything.Inner(kind=pb.Everything.KIND_SMALL, children=[pb.Everything.Inner()]),
        counts={"a": 1, "b": -2}, named_points={"p": pb.Point(x=3)}, color_by_id={7: pb.COLOR_GREEN},
        created_at=timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=123_000),
        elapsed=duration_pb2.Duration(seconds=-3, nanos=-500_000_000),
        stamps=[timestamp_pb2.Timestamp(seconds=1)],
        w_double=wrappers_pb2.DoubleValue(value=0.5), w_float=wrappers_pb2.FloatValue(value=0.0),
        w_int64=wrappers_pb2.Int64Value(value=-(2**50)), w_uint64=wrappers_pb2.UInt64Value(value=2**60),
        w_int32=wrappers_pb2.Int32Value(value=0), w_uint32=wrappers_pb2.UInt32Value(value=4),
        w_bool=wrappers_pb2.BoolValue(value=False), w_string=wrappers_pb2.StringValue(value=""),
        w_bytes=wrappers_pb2.BytesValue(value=b"b"), nothing=empty_pb2.Empty(),
        mask=field_mask_pb2.FieldMask(paths=["a.b"]), tag=common_pb2.Tag(key="k", level=common_pb2.LEVEL_HIGH),
        levels=[common_pb2.LEVEL_LOW], spot=pb.Point(x=9), **{"from": "keyword"},
    )  # fmt: skip
    message.extra.update({"s": "v", "n": 1.0, "nested": {"l": [1.0, True, None]}})
    return message


def test_a_message_of_every_field_kind_round_trips_through_the_codec() -> None:
    codec = codec_for(pb.Everything, gen.Everything)
    message = _full_message()
    decoded = codec.decode(message.SerializeToString())
    assert decoded.color is gen.Color.RED and decoded.kind is gen.Everything.Kind.LARGE
    assert decoded.maybe_count == 0 and decoded.maybe_text == ""  # set to the zero value: present
    assert decoded.maybe_color is gen.Color.UNSPECIFIED
    assert decoded.origin == gen.Point() and decoded.spot == gen.Point(x=9) and decoded.word is None
    assert decoded.inner == gen.Everything.Inner(
        kind=gen.Everything.Kind.SMALL, children=[gen.Everything.Inner()]
    )
    assert decoded.created_at == datetime(2023, 11, 14, 22, 13, 20, 123, tzinfo=UTC)
    assert decoded.elapsed == timedelta(seconds=-3.5) and decoded.stamps == [
        datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)
    ]
    assert (decoded.w_float, decoded.w_bool, decoded.w_string, decoded.w_bytes) == (0.0, False, "", b"b")
    assert decoded.extra == {"s": "v", "n": 1.0, "nested": {"l": [1.0, True, None]}}
    assert decoded.nothing == wkt.Empty() and decoded.mask == wkt.FieldMask(paths=["a.b"])
    assert decoded.tag == common_cqrs.Tag(key="k", level=common_cqrs.Level.HIGH)
    assert decoded.levels == [common_cqrs.Level.LOW] and decoded.from_ == "keyword"
    assert decoded.color_by_id == {7: gen.Color.GREEN} and decoded.named_points == {"p": gen.Point(x=3)}
    assert pb.Everything.FromString(codec.encode(decoded)) == message
    assert codec.to_message(decoded) == message


def test_the_bare_class_is_the_empty_message_both_ways() -> None:
    codec = codec_for(pb.Everything, gen.Everything)
    assert codec.encode(gen.Everything()) == b""
    assert codec.decode(b"") == gen.Everything()


# --- serving with generated classes only ---------------------------------------------------------


class Echo(RequestHandler[gen.Everything, gen.Everything]):
    async def handle(self, request: gen.Everything) -> gen.Everything:
        return request


class Get(RequestHandler[gen.GetThing, gen.Thing]):
    async def handle(self, request: gen.GetThing) -> gen.Thing:
        return gen.Thing(name=request.name, kind=gen.Everything.Kind.SMALL, tags=[common_cqrs.Tag(key="t")])


class Put(RequestHandler[gen.Thing, wkt.Empty]):
    stored: typing.ClassVar[list[gen.Thing]] = []

    async def handle(self, request: gen.Thing) -> wkt.Empty:
        self.stored.append(request)
        return wkt.Empty()


class List(StreamingRequestHandler[gen.ListThings, gen.Thing]):
    async def handle(self, request: gen.ListThings) -> AsyncIterator[gen.Thing]:
        for index in range(request.limit):
            yield gen.Thing(name=f"thing-{index}")


def _app(get_request: type[cqrs.Request] = gen.GetThing) -> App:
    unary = bootstrap.bootstrap(
        queries_mapper=lambda m: (
            m.bind(gen.Everything, Echo),
            m.bind(get_request, Get),
            m.bind(gen.Thing, Put),
        )
    )
    streaming = bootstrap.bootstrap_streaming(queries_mapper=lambda m: m.bind(gen.ListThings, List))
    app = App(mediator=unary, streaming_mediator=streaming)
    app.add_services(gen_test_pb2)
    return app


async def test_an_app_of_generated_classes_only_answers_over_grpc() -> None:
    async with serve_for_test(_app()) as served:
        stub = served.stub(gen_test_pb2_grpc.ThingsStub)
        message = _full_message()
        assert await stub.Echo(message) == message
        thing = await stub.Get(pb.GetThing(name="a"))
        assert thing == pb.Thing(name="a", kind=pb.Everything.KIND_SMALL, tags=[common_pb2.Tag(key="t")])
        assert await stub.Put(thing) == empty_pb2.Empty()
        assert Put.stored[-1] == gen.Thing(
            name="a", kind=gen.Everything.Kind.SMALL, tags=[common_cqrs.Tag(key="t")]
        )
        names = [t.name async for t in stub.List(pb.ListThings(limit=3))]
        assert names == ["thing-0", "thing-1", "thing-2"]


class GetThing(cqrs.Request):
    """Hand-written, mirroring only what the handler reads (the proto's one field)."""

    name: str


def _wrong_get_thing() -> type[cqrs.Request]:
    class GetThing(cqrs.Request):
        name: int  # the proto says string

    return GetThing


async def test_a_hand_written_class_still_serves_beside_generated_ones() -> None:
    async with serve_for_test(_app(GetThing)) as served:
        thing = await served.stub(gen_test_pb2_grpc.ThingsStub).Get(pb.GetThing(name="b"))
        assert thing.name == "b"


def test_a_wrong_hand_written_class_is_still_refused_at_start_up() -> None:
    with pytest.raises(StartupError) as refused:
        _app(_wrong_get_thing())
    [problem] = refused.value.problems
    assert "gentest.v1.Things/Get request" in problem and "gentest.v1.GetThing.name" in problem
    assert "GetThing.name (int)" in problem


# --- the plugin itself ---------------------------------------------------------------------------


def test_make_proto_output_is_what_python_m_server_protoc_gen_writes(tmp_path: Path) -> None:
    plugin = tmp_path / "protoc-gen-cqrs"
    plugin.write_text(f"#!/bin/sh\nexec {sys.executable} -m server.protoc_gen\n")
    plugin.chmod(0o755)
    protos = ["gentest/v1/common.proto", "gentest/v1/gen_test.proto"]
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'tests/protos'}", f"--plugin=protoc-gen-cqrs={plugin}",
         f"--cqrs_out={tmp_path}", *protos],
        check=True, cwd=ROOT,
    )  # fmt: skip
    written = (tmp_path / "gentest/v1/gen_test_cqrs.py").read_text()
    assert written == Path(gen.__file__).read_text()
    assert written.startswith("# Generated by protoc-gen-cqrs from gentest/v1/gen_test.proto. DO NOT EDIT.")


def _request(*files: descriptor_pb2.FileDescriptorProto) -> plugin_pb2.CodeGeneratorRequest:
    request = plugin_pb2.CodeGeneratorRequest(file_to_generate=[files[-1].name])
    request.proto_file.extend(files)
    return request


def _file_proto(module: ModuleType) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(proto)
    return proto


def test_a_message_the_codec_cannot_map_is_reported_by_field() -> None:
    bad = descriptor_pb2.FileDescriptorProto(
        name="bad.proto", package="bad", syntax="proto3", dependency=["google/protobuf/struct.proto"]
    )
    bad.message_type.add(name="Holder").field.add(
        name="value", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
        type_name=".google.protobuf.Value", label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )  # fmt: skip
    response = generate(_request(_file_proto(struct_pb2), bad))
    assert not response.file
    assert "field bad.Holder.value: google.protobuf.Value has no generated class" in response.error


def test_the_plugin_declares_proto3_optional_support() -> None:
    response = generate(_request(_file_proto(common_pb2)))
    assert response.supported_features & plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    [written] = response.file
    assert written.name == "gentest/v1/common_cqrs.py"


@pytest.mark.parametrize(
    ("cls", "message"),
    [(wkt.Empty, empty_pb2.Empty), (wkt.FieldMask, field_mask_pb2.FieldMask), (wkt.Any, any_pb2.Any)],
)
def test_the_well_known_classes_fit_their_messages(cls: type, message: typing.Any) -> None:
    assert check_fields(message.DESCRIPTOR, cls, where="wkt") == []
    assert codec_for(message, cls).decode(message().SerializeToString()) == cls()
