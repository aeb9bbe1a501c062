"""Every ``buf curl`` command of clients/README.md, run as written against ``python -m server``.

The commands are taken from the document itself (``$ $BUF curl ...`` lines of its ``sh`` blocks,
with ``\\`` continuations) and run by bash with ``BUF``, ``ADDR`` and ``FILE_ID`` set the way the
document tells the reader to set them, so the page cannot go stale. WatchFileEvents runs in the
background, as in the document's "second terminal", and must see the events of what follows.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from pathlib import Path

from tests.e2e.conftest import BUF, DEMO_APP, ROOT, ServerProcess, start_server
from tests.pki import Pki, needs_openssl

README = ROOT / "clients" / "README.md"


PLAIN = "## A session with buf curl"
SECURE = "## With TLS and a token"


def section(text: str, heading: str) -> str:
    """The part of the document under ``heading``, up to the next level-2 heading."""
    rest = text.split(heading + "\n", 1)[1]
    return rest.split("\n## ", 1)[0]


def buf_curl_commands(text: str) -> list[str]:
    commands: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        lines = iter(block.splitlines())
        for line in lines:
            if not line.startswith("$ $BUF curl"):
                continue
            command = line[2:]
            while command.endswith("\\"):
                command = command[:-1] + next(lines).strip()
            commands.append(command)
    return commands


def json_documents(text: str) -> list[dict[str, object]]:
    decoder, documents, rest = json.JSONDecoder(), [], text.strip()
    while rest:
        document, end = decoder.raw_decode(rest)
        documents.append(document)
        rest = rest[end:].strip()
    return documents


async def test_every_buf_curl_command_of_the_clients_readme_works(server_process: ServerProcess) -> None:
    commands = buf_curl_commands(section(README.read_text(), PLAIN))
    assert len(commands) >= 8, commands
    env = {**os.environ, "BUF": str(BUF), "ADDR": f"http://{server_process.address}"}
    outputs: dict[str, str] = {}
    watch: asyncio.subprocess.Process | None = None
    try:
        for command in commands:
            listing = re.search(r"--list-\w+", command)
            rpc = listing.group() if listing else command.rsplit("/", 1)[-1]
            if rpc == "WatchFileEvents":
                watch = await asyncio.create_subprocess_exec(
                    "bash", "-c", command, cwd=ROOT, env=env, start_new_session=True,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                )  # fmt: skip
                assert watch.stderr is not None
                async with asyncio.timeout(15):  # the document's promise: this header means "live"
                    while b"X-Subscribed: true" not in await watch.stderr.readline():
                        assert watch.returncode is None
                continue
            process = await asyncio.create_subprocess_exec(
                "bash", "-c", command, cwd=ROOT, env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(process.communicate(), 20)
            assert process.returncode == 0, f"{command}\n{err.decode()}"
            outputs[rpc] = out.decode()
            if rpc == "UploadFile":
                env["FILE_ID"] = str(json_documents(outputs[rpc])[0]["fileId"])

        assert "demo.files.v1.FileService" in outputs["--list-services"].split()
        assert "demo.files.v1.FileService/WatchFileEvents" in outputs["--list-methods"].split()
        assert json_documents(outputs["Check"]) == [{"status": "SERVING"}]
        processed = json_documents(outputs["ProcessFiles"])
        assert [(r["fileId"], r["status"]) for r in processed] == [
            (env["FILE_ID"], "completed"),
            ("no-such-file", "not_found"),
        ]
        assert processed[0]["lineCount"] == "2" and processed[0]["size"] == "12"
        assert json_documents(outputs["GetFileStatus"])[0]["status"] == "completed"
        [listed] = json_documents(outputs["ListFiles"])[0]["files"]
        assert listed["name"] == "hello.txt"
        [streamed] = json_documents(outputs["UploadFileChunks"])  # after ListFiles in the document
        assert (streamed["name"], streamed["size"], streamed["sha256"]) == (
            "hello-again.txt",
            "12",
            listed["sha256"],
        )

        assert watch is not None and watch.stdout is not None
        os.killpg(watch.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group, as in a terminal
        watched, _ = await asyncio.wait_for(watch.communicate(), 10)
        events = json_documents(watched.decode())
        assert [(e["kind"], e.get("status", "")) for e in events][:3] == [
            ("file_uploaded", ""),
            ("file_processed", "completed"),
            ("file_processed", "not_found"),
        ]
    finally:
        if watch is not None and watch.returncode is None:
            os.killpg(watch.pid, signal.SIGKILL)
            await watch.wait()


def test_the_extractor_joins_continuations() -> None:
    text = "```sh\n$ $BUF curl -d '{}' \\\n    $ADDR/x\nout\n$ other\n```\n"
    assert buf_curl_commands(text) == ["$BUF curl -d '{}' $ADDR/x"]
    assert Path(README).exists()


@needs_openssl
async def test_every_buf_curl_command_of_the_tls_and_token_section_works(pki: Pki, tmp_path: Path) -> None:
    token = "readme-token-0123456789abcdef01"
    (tmp_path / "tokens").write_text(f"{token} readme\n")
    server = await start_server(
        "--app", DEMO_APP, "--grace", "1", "--tls-cert", str(pki.server_pem), "--tls-key", str(pki.server_key),
        "--tls-client-ca", str(pki.ca_pem), "--auth-tokens-file", str(tmp_path / "tokens"),
    )  # fmt: skip
    env = {
        **os.environ,
        "BUF": str(BUF),
        "ADDR": f"https://{server.address}",
        "CA": str(pki.ca_pem),
        "CERT": str(pki.client_pem),
        "KEY": str(pki.client_key),
        "TOKEN": token,
    }
    try:
        commands = buf_curl_commands(section(README.read_text(), SECURE))
        assert len(commands) >= 4, commands
        outputs: dict[str, str] = {}
        for command in commands:
            process = await asyncio.create_subprocess_exec(
                "bash", "-c", command, cwd=ROOT, env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(process.communicate(), 20)
            assert process.returncode == 0, f"{command}\n{err.decode()}"
            listing = re.search(r"--list-\w+", command)
            outputs[listing.group() if listing else command.rsplit("/", 1)[-1]] = out.decode()
        assert "demo.files.v1.FileService" in outputs["--list-services"].split()
        assert json_documents(outputs["Check"]) == [{"status": "SERVING"}]
        assert json_documents(outputs["ListFiles"]) == [{}]
        [result] = json_documents(outputs["ProcessFiles"])
        assert (result["fileId"], result["status"]) == ("f_unknown", "not_found")
        # the same call without the header is refused, as the document says
        bare = commands[-1].replace('-H "authorization: Bearer $TOKEN" ', "")
        process = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            bare,
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(process.communicate(), 20)
        assert process.returncode != 0 and "unauthenticated" in err.decode().lower()
    finally:
        if server.process.returncode is None:
            server.process.kill()
            await server.process.wait()
