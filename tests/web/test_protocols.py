"""The HTTP port with real clients: buf curl (gRPC-Web, Connect), connect-node's gRPC-Web transport, curl."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from pathlib import Path

import grpc
import pytest

from tests.pki import make_pki, needs_openssl
from tests.web.conftest import BUF, CURL, IMAGE, NODE_CLIENT, PROCESS, ROOT, STATUS, Served, ServeFactory, run

pytestmark = pytest.mark.e2e


def buf_curl(served: Served, protocol: str, method: str, body: str, *extra: str) -> list[str]:
    return [
        str(BUF),
        "curl",
        "--protocol",
        protocol,
        "--schema",
        str(ROOT / "protos"),
        *extra,
        "-d",
        body,
        f"{served.url}/{method}",
    ]


@pytest.mark.parametrize("protocol", ["grpcweb", "connect"])
async def test_buf_curl_streams_and_errors(served: Served, protocol: str) -> None:
    code, out, err = await run(*buf_curl(served, protocol, PROCESS, '{"fileIds": ["a", "b"]}'))
    assert code == 0, err
    results = [json.loads(chunk) for chunk in out.replace("}\n{", "}\x00{").split("\x00")]
    assert [(r["fileId"], r["index"], r["total"]) for r in results] == [("a", 1, 2), ("b", 2, 2)]

    code, out, err = await run(*buf_curl(served, protocol, STATUS, '{"fileId": "zz"}'))
    error = json.loads(err)
    assert (code, error["code"], error["message"]) == (40, "not_found", "no file has the id 'zz'")
    assert error["details"][0]["type"] == "google.rpc.ErrorInfo"


async def test_connect_node_grpc_web_transport(served: Served) -> None:
    code, out, err = await run(
        "node", NODE_CLIENT, served.url, IMAGE, PROCESS, '{"fileIds": ["x", "y", "z"]}'
    )
    assert code == 0, err
    assert [json.loads(line)["fileId"] for line in out.splitlines()] == ["x", "y", "z"]

    code, out, _ = await run("node", NODE_CLIENT, served.url, IMAGE, STATUS, '{"fileId": "q"}')
    assert (code, json.loads(out)) == (
        1,
        {"error": {"code": "NotFound", "message": "no file has the id 'q'"}},
    )
    # its Connect transport too: a unary call is Connect unary with binary messages (application/proto)
    code, out, _ = await run("node", NODE_CLIENT, served.url, IMAGE, STATUS, '{"fileId": "q"}', "connect")
    assert (code, json.loads(out)["error"]["code"]) == (1, "NotFound")


async def curl(served: Served, path: str, *args: str) -> tuple[int, dict[str, str], bytes]:
    """One request with curl: HTTP status, response headers (lower-cased), body."""
    code, out, err = await run(CURL, "-s", "-i", "--http1.1", *args, f"{served.url}{path}")
    assert code == 0, err
    head, _, body = out.partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body.encode("latin-1")


async def test_connect_unary_json_and_its_errors(served: Served) -> None:
    json_post = ("-X", "POST", "-H", "content-type: application/json")
    status, _, body = await curl(served, f"/{STATUS}", *json_post, "-d", '{"fileId": "nope"}')
    assert (status, json.loads(body)["code"]) == (404, "not_found")

    status, _, body = await curl(served, f"/{STATUS}", *json_post, "-d", '{"fileId": ')
    error = json.loads(body)
    assert (status, error["code"]) == (400, "invalid_argument")
    assert "not valid proto3 JSON of demo.files.v1.GetFileStatusQuery" in error["message"]
    assert "Traceback" not in error["message"]

    status, _, body = await curl(served, "/demo.files.v1.FileService/ListFiles", *json_post, "-d", "{}")
    assert (status, json.loads(body)["code"]) == (501, "unimplemented")

    status, _, body = await curl(served, "/grpc.health.v1.Health/Check", *json_post, "-d", "{}")
    assert (status, json.loads(body)) == (200, {"status": "SERVING"})
    status, _, body = await curl(served, "/healthz")
    assert (status, json.loads(body)) == (200, {"status": "SERVING"})

    status, _, body = await curl(
        served, f"/{PROCESS}", "-X", "POST", "-H", "content-type: text/plain", "-d", "x"
    )
    assert status == 415 and b"text/event-stream" in body


def frames(body: bytes) -> list[tuple[int, bytes]]:
    out, offset = [], 0
    while offset < len(body):
        flags, length = struct.unpack_from(">BI", body, offset)
        out.append((flags, body[offset + 5 : offset + 5 + length]))
        offset += 5 + length
    return out


async def test_grpc_web_text_and_bad_envelopes(served: Served, tmp_path: Path) -> None:
    from demo.files.v1 import files_pb2

    request = files_pb2.ProcessFilesCommand(file_ids=["t"]).SerializeToString()
    framed = base64.b64encode(struct.pack(">BI", 0, len(request)) + request).decode()
    text = ("-X", "POST", "-H", "content-type: application/grpc-web-text", "-d", framed)
    status, headers, body = await curl(served, f"/{PROCESS}", *text)
    assert (status, headers["content-type"]) == (200, "application/grpc-web-text+proto")
    decoded = b"".join(base64.b64decode(body[i : i + 4]) for i in range(0, len(body), 4))
    (flag, message), (trailer_flag, trailers) = frames(decoded)
    assert files_pb2.FileProcessedResult.FromString(message).file_id == "t"
    assert (flag, trailer_flag) == (0, 0x80) and b"grpc-status: 0" in trailers

    (tmp_path / "cut").write_bytes(b"\x00\x00\x00\x00\x09ab")  # announces 9 bytes, sends 2
    cut = (
        "-X",
        "POST",
        "-H",
        "content-type: application/grpc-web+proto",
        "--data-binary",
        f"@{tmp_path / 'cut'}",
    )
    status, _, body = await curl(served, f"/{PROCESS}", *cut)
    ((flag, trailers),) = frames(body)
    assert flag == 0x80 and f"grpc-status: {grpc.StatusCode.INVALID_ARGUMENT.value[0]}".encode() in trailers
    assert b"not enveloped messages" in trailers and b"Traceback" not in trailers


async def test_cors_allow_list(serve: ServeFactory) -> None:
    async with serve(http_cors_origins=("https://app.example",)) as served:
        preflight = ("-X", "OPTIONS", "-H", "access-control-request-method: POST")
        asked = ("-H", "access-control-request-headers: content-type,connect-protocol-version,authorization")
        status, headers, _ = await curl(
            served, f"/{STATUS}", *preflight, *asked, "-H", "origin: https://app.example"
        )
        assert status == 200 and headers["access-control-allow-origin"] == "https://app.example"
        status, _, _ = await curl(
            served, f"/{STATUS}", *preflight, *asked, "-H", "origin: https://evil.example"
        )
        assert status == 400
        post = (
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "-d",
            "{}",
            "-H",
            "origin: https://app.example",
        )
        _, headers, _ = await curl(served, "/grpc.health.v1.Health/Check", *post)
        assert "grpc-status" in headers["access-control-expose-headers"]


async def test_bearer_tokens_as_on_grpc(serve: ServeFactory, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("0123456789abcdef0123456789abcdef reader demo.files.v1.FileService/GetFileStatus\n")
    async with serve(auth_tokens_file=str(tokens)) as served:
        _, out, _ = await run("node", NODE_CLIENT, served.url, IMAGE, STATUS, '{"fileId": "q"}')
        assert json.loads(out)["error"]["code"] == "Unauthenticated"
        bearer = {"AUTHORIZATION": "Bearer 0123456789abcdef0123456789abcdef"}
        _, out, _ = await run("node", NODE_CLIENT, served.url, IMAGE, STATUS, '{"fileId": "q"}', env=bearer)
        assert json.loads(out)["error"]["code"] == "NotFound"  # through to the handler
        _code, out, _ = await run(
            "node", NODE_CLIENT, served.url, IMAGE, PROCESS, '{"fileIds": []}', env=bearer
        )
        assert json.loads(out)["error"]["code"] == "PermissionDenied"
        status, _, _ = await curl(served, "/healthz")
        assert status == 200  # health stays open, as on gRPC


async def test_limits_as_on_grpc(serve: ServeFactory) -> None:
    async with serve(max_receive_message_bytes=64, max_concurrent_streams=1) as served:
        big = json.dumps({"fileId": "x" * 100})
        status, _, body = await curl(served, f"/{STATUS}", "-H", "content-type: application/json", "-d", big)
        assert (status, json.loads(body)["code"]) == (429, "resource_exhausted")
        sse = ("-N", "-H", "accept: text/event-stream", "-H", "content-type: application/json")
        hanging = await asyncio.create_subprocess_exec(
            CURL,
            "-s",
            *sse,
            "-d",
            '{"fileIds": ["hang"]}',
            f"{served.url}/{PROCESS}",
            stdout=asyncio.subprocess.DEVNULL,
        )
        try:
            await asyncio.wait_for(served.script.started.wait(), 20)
            _, _, err = await run(*buf_curl(served, "grpcweb", PROCESS, '{"fileIds": ["a"]}'))
            assert json.loads(err)["code"] == "resource_exhausted" and "concurrent streams" in err
        finally:
            hanging.kill()
            await hanging.wait()


@pytest.mark.parametrize("header", ["grpc-timeout: 300m", "connect-timeout-ms: 300"])
async def test_deadline_ends_the_call_and_closes_the_handler(served: Served, header: str) -> None:
    sse = ("-X", "POST", "-H", "content-type: application/json", "-H", "accept: text/event-stream")
    code, out, err = await run(
        CURL, "-s", "-N", *sse, "-H", header, "-d", '{"fileIds": ["a", "hang"]}', f"{served.url}/{PROCESS}"
    )
    assert code == 0, err
    first, end = (block for block in out.split("\n\n") if block)
    assert first.startswith("id: 1\ndata: ") and json.loads(first.split("data: ")[1])["fileId"] == "a"
    assert end.startswith("event: end\n")
    assert json.loads(end.split("data: ")[1])["code"] == "DEADLINE_EXCEEDED"
    assert served.script.closed == ["ProcessFiles"]


@needs_openssl
async def test_the_http_port_speaks_tls_when_the_grpc_port_does(serve: ServeFactory, tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    async with serve(tls_cert=str(pki.server_pem), tls_key=str(pki.server_key)) as served:
        https = served.url.replace("http://", "https://")
        code, out, _ = await run(CURL, "-s", "--cacert", pki.ca_pem, f"{https}/healthz")
        assert (code, json.loads(out)) == (0, {"status": "SERVING"})
        code, _, _ = await run(CURL, "-s", f"{served.url}/healthz")
        assert code != 0  # no plain HTTP beside it
