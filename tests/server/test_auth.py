"""Bearer-token authentication (--auth-tokens-file) against an in-process server, with real clients."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from server import ServerSettings, StartupError
from server.auth import TokenAuth, TokenFileError, parse_tokens
from server.testing import ServedApp, serve_for_test
from streamtest.v1 import stream_test_pb2, stream_test_pb2_grpc
from tests.server.helpers import error_info, rich_status
from tests.server.ticks import ticks_app

OPS = "ops-token-0123456789abcdef"
READER = "reader-token-0123456789abcdef"
TOKENS = f"""\
# test tokens
{OPS} ops
{READER} reader streamtest.v1.TickService/Echo,grpc.reflection.*
"""


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text(TOKENS)
    return path


async def _served(tokens_file: Path, **more: object) -> AsyncIterator[ServedApp]:
    settings = ServerSettings(grace=0.5, auth_tokens_file=str(tokens_file), **more)  # type: ignore[arg-type]
    async with serve_for_test(ticks_app(settings=settings)) as served:
        yield served


@pytest.fixture
async def served(tokens_file: Path) -> AsyncIterator[ServedApp]:
    async for served in _served(tokens_file):
        yield served


async def echo(served: ServedApp, text: str = "whoami", token: str | None = None) -> str:
    stub = stream_test_pb2_grpc.TickServiceStub(served.channel)
    reply = await stub.Echo(
        stream_test_pb2.EchoQuery(text=text), metadata=bearer(token) if token else None, timeout=5
    )
    return str(reply.text)


async def refusal(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call  # type: ignore[misc]
    return refused.value


async def test_a_valid_token_is_served_and_its_name_is_the_principal(served: ServedApp) -> None:
    assert await echo(served, token=OPS) == "principal=ops cn=- sans=-"
    assert await echo(served, token=READER) == "principal=reader cn=- sans=-"
    stub = stream_test_pb2_grpc.TickServiceStub(served.channel)
    ticks = stub.Ticks(stream_test_pb2.TicksCommand(count=2, mode="count"), metadata=bearer(OPS))
    assert [t.seq async for t in ticks] == [1, 2]


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ([], "TOKEN_MISSING"),
        (bearer("wrong-token-0123456789abcdef"), "TOKEN_INVALID"),
        (bearer(OPS[:-1]), "TOKEN_INVALID"),
        ([("authorization", f"Basic {OPS}")], "TOKEN_MALFORMED"),
        ([("authorization", "Bearer ")], "TOKEN_MALFORMED"),
    ],
    ids=["missing", "wrong", "prefix-of-a-valid-one", "not-bearer", "empty"],
)
async def test_a_missing_or_wrong_token_is_unauthenticated_for_every_call_shape(
    served: ServedApp, metadata: list[tuple[str, str]], reason: str
) -> None:
    stub = stream_test_pb2_grpc.TickServiceStub(served.channel)
    unary = await refusal(stub.Echo(stream_test_pb2.EchoQuery(text="x"), metadata=metadata, timeout=5))
    assert unary.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "Bearer <token>" in (unary.details() or "") or "not valid" in (unary.details() or "")
    assert error_info(rich_status(unary)).reason == reason
    stream = stub.Ticks(stream_test_pb2.TicksCommand(count=1, mode="count"), metadata=metadata, timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as streamed:
        [t async for t in stream]
    assert streamed.value.code() is grpc.StatusCode.UNAUTHENTICATED
    # an unknown method is refused the same way: an unauthenticated caller learns nothing
    unknown = await refusal(
        served.channel.unary_unary("/streamtest.v1.TickService/Nope")(b"", metadata=metadata)
    )
    assert unknown.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_a_token_not_allowed_for_the_method_is_permission_denied(served: ServedApp) -> None:
    stub = stream_test_pb2_grpc.TickServiceStub(served.channel)
    stream = stub.Ticks(stream_test_pb2.TicksCommand(count=1, mode="count"), metadata=bearer(READER))
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        [t async for t in stream]
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert denied.value.details() == "token 'reader' may not call streamtest.v1.TickService/Ticks"
    info = error_info(rich_status(denied.value))
    assert (info.reason, dict(info.metadata)) == (
        "METHOD_NOT_ALLOWED",
        {"principal": "reader", "method": "streamtest.v1.TickService/Ticks"},
    )


async def _list_services(channel: grpc.aio.Channel, token: str | None = None) -> list[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = stub.ServerReflectionInfo(metadata=bearer(token) if token else None, timeout=5)
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    reply = await call.read()
    await call.done_writing()
    return [service.name for service in reply.list_services_response.service]


async def _health(channel: grpc.aio.Channel) -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return int(reply.status)


async def test_health_and_reflection_are_open_without_a_token_by_default(served: ServedApp) -> None:
    assert await _health(served.channel) == health_pb2.HealthCheckResponse.SERVING
    assert "streamtest.v1.TickService" in await _list_services(served.channel)


async def _reflection_status(channel: grpc.aio.Channel) -> grpc.StatusCode:
    """The status the server ends a reflection stream with before any request is written.

    The refusal depends on metadata alone. Writing a request would race it: grpc's client marks a
    write that lands after the server's status as INTERNAL, hiding the status the server sent.
    """
    call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(timeout=5)
    code: grpc.StatusCode = await call.code()
    return code


async def test_reflection_and_health_can_be_put_behind_auth(tokens_file: Path) -> None:
    async for served in _served(tokens_file, reflection_requires_auth=True, health_requires_auth=True):
        assert await _reflection_status(served.channel) is grpc.StatusCode.UNAUTHENTICATED
        assert (await refusal(_health(served.channel))).code() is grpc.StatusCode.UNAUTHENTICATED
        assert "streamtest.v1.TickService" in await _list_services(served.channel, READER)


async def test_reflection_can_be_turned_off() -> None:
    async with serve_for_test(ticks_app(settings=ServerSettings(grace=0.5, reflection=False))) as served:
        assert await _reflection_status(served.channel) is grpc.StatusCode.UNIMPLEMENTED
        assert await echo(served, "still here") == "still here"


async def test_tokens_never_appear_in_logs(served: ServedApp, caplog: pytest.LogCaptureFixture) -> None:
    wrong = "wrong-token-fedcba9876543210"
    with caplog.at_level(logging.DEBUG):
        assert await echo(served, token=OPS)
        await refusal(echo(served, token=wrong))
        await refusal(echo(served, token=READER[:-2]))
        stub = stream_test_pb2_grpc.TickServiceStub(served.channel)
        with pytest.raises(grpc.aio.AioRpcError):
            [
                t
                async for t in stub.Ticks(
                    stream_test_pb2.TicksCommand(count=1, mode="count"), metadata=bearer(READER)
                )
            ]
    assert any("UNAUTHENTICATED" in r.getMessage() for r in caplog.records)  # the refusals were logged
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    for secret in (OPS, READER, wrong, READER[:-2], OPS[:8], READER[:8]):
        assert secret not in logged


def _write(path: Path, text: str) -> None:
    path.write_text(text)


async def test_reload_revokes_a_token_and_a_broken_file_keeps_the_old_ones(
    served: ServedApp, tokens_file: Path
) -> None:
    _write(tokens_file, f"{OPS} ops\n")
    assert served.running.reload() is True
    assert (await refusal(echo(served, token=READER))).code() is grpc.StatusCode.UNAUTHENTICATED
    _write(tokens_file, "short\n")
    assert served.running.reload() is False
    assert await echo(served, token=OPS) == "principal=ops cn=- sans=-"


def test_every_known_token_is_compared_even_after_a_match(
    tokens_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server import auth
    from server.errors import ErrorMapper
    from server.observability import RpcLog

    interceptor = TokenAuth(str(tokens_file), errors=ErrorMapper(), log=RpcLog(), draining=None)  # type: ignore[arg-type]
    compared: list[tuple[bytes, bytes]] = []
    real = auth.hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    assert interceptor.match(OPS) is not None and interceptor.match(OPS).name == "ops"  # type: ignore[union-attr]
    assert len(compared) == 2 * 2  # both tokens, for each of the two lookups: no early exit
    assert {len(a) for a, _ in compared} == {32}  # digests: equal lengths whatever was sent


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("short-token\n", "line 1 (line-1): the token is shorter than 16"),
        (f"{OPS} a\n{OPS} b\n", "line 2: the same token as line 1"),
        (f"{OPS} a\n{READER} a\n", "line 2: the name 'a' is already used on line 1"),
        (f"{OPS} a b c\n", "expected 'TOKEN [NAME [METHOD,...]]'"),
        ("# only comments\n\n", "holds no token"),
    ],
    ids=["short", "duplicate-token", "duplicate-name", "extra-fields", "empty"],
)
def test_a_bad_tokens_file_is_refused_naming_the_line_but_never_the_token(text: str, message: str) -> None:
    with pytest.raises(TokenFileError) as refused:
        parse_tokens(text)
    assert message in str(refused.value)
    assert OPS not in str(refused.value) and READER not in str(refused.value)


async def test_the_server_refuses_to_start_with_an_unusable_tokens_file_or_auth_options(
    tmp_path: Path,
) -> None:
    with pytest.raises(StartupError, match="cannot be read"):
        await ticks_app(settings=ServerSettings(auth_tokens_file=str(tmp_path / "nope"))).start()
    with pytest.raises(StartupError, match="--reflection-requires-auth needs --auth-tokens-file"):
        await ticks_app(settings=ServerSettings(reflection_requires_auth=True)).start()
