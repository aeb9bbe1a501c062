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

from tests.e2e.conftest import BUF, ROOT, ServerProcess

README = ROOT / "clients" / "README.md"


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
    commands = buf_curl_commands(README.read_text())
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
        assert [f["name"] for f in json_documents(outputs["ListFiles"])[0]["files"]] == ["hello.txt"]

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
