"""Run the plugin: a CodeGeneratorRequest on stdin, a CodeGeneratorResponse on stdout."""

from __future__ import annotations

import sys

from google.protobuf.compiler import plugin_pb2

from server.protoc_gen import generate


def main() -> None:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    sys.stdout.buffer.write(generate(request).SerializeToString())


if __name__ == "__main__":
    main()
