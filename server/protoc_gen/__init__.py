"""protoc-gen-cqrs: a protoc plugin writing ``foo_cqrs.py`` (cqrs dataclasses) beside ``foo_pb2.py``.

    python -m grpc_tools.protoc -Iprotos --python_out=gen --cqrs_out=gen \\
        --plugin=protoc-gen-cqrs=.venv/bin/protoc-gen-cqrs protos/demo/files/v1/files.proto

Each message becomes a keyword-only dataclass named as the message, typed by the codec's mapping
(``server.codec``), every field with its proto3 default. A message some RPC takes is a
``cqrs.Request``, one some RPC returns a ``cqrs.Response``, one used both ways is both; a message
used only inside others is a plain dataclass. Each proto enum becomes an ``enum.IntEnum``. RPC usage
is read from every service protoc passes in one run, so generate a package's protos together.
"""

from __future__ import annotations

from google.protobuf import descriptor_pool
from google.protobuf.compiler import plugin_pb2

from server.protoc_gen.render import FileRenderer, GenerationError, file_name, module_name

__all__ = ["GenerationError", "generate", "module_name"]


def generate(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    """The ``*_cqrs.py`` files for ``request.file_to_generate``; a problem goes to ``response.error``."""
    response = plugin_pb2.CodeGeneratorResponse(
        supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    )
    pool = descriptor_pool.DescriptorPool()
    for file_proto in request.proto_file:  # dependencies come before the files that import them
        pool.Add(file_proto)
    files = [pool.FindFileByName(file_proto.name) for file_proto in request.proto_file]
    inputs = {m.input_type.full_name for f in files for s in f.services_by_name.values() for m in s.methods}
    outputs = {m.output_type.full_name for f in files for s in f.services_by_name.values() for m in s.methods}
    try:
        for name in request.file_to_generate:
            source = FileRenderer(pool.FindFileByName(name), inputs, outputs).render()
            response.file.add(name=file_name(name), content=source)
    except GenerationError as error:
        return plugin_pb2.CodeGeneratorResponse(error=f"protoc-gen-cqrs: {error}")
    return response
