"""``python -m clients.python``: upload and process (live progress bars), list and watch, from a shell.

Connection flags come before the command; each has an environment variable so scripts can set
them once: ``CQRS_GRPC_TARGET``, ``CQRS_GRPC_TIMEOUT``, ``CQRS_GRPC_TLS_CA``/``_CERT``/``_KEY``,
``CQRS_GRPC_TOKEN`` (prefer it, or ``--token-file``, to ``--token``: a command line is visible to
other users of the machine).
Exit codes: 0 success, 1 the server answered with an error (or a file was not completed, for
``process --strict``), 2 bad usage, 130 interrupted (Ctrl-C cancels the call first).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from clients.python.connection import Connection, TlsConfig
from clients.python.models import FileInfo, FileServiceError, ProcessResult, as_json
from clients.python.sync import FileClient

_UPLOAD_COLUMNS = (
    TextColumn("uploading {task.description}"),
    BarColumn(),
    DownloadColumn(),
    TransferSpeedColumn(),
    TimeElapsedColumn(),
)
_MARKS = {"completed": "[green]✓[/]", "not_found": "[yellow]?[/]", "failed": "[red]✗[/]"}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m clients.python", description=__doc__.split("\n")[0])
    parser.add_argument("--address", default=env("CQRS_GRPC_TARGET", "127.0.0.1:50051"), help="host:port")
    parser.add_argument(
        "--timeout",
        type=float,
        default=float(env("CQRS_GRPC_TIMEOUT", "30")),
        help="deadline of unary calls (s)",
    )
    parser.add_argument(
        "--metadata",
        "-H",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="request metadata (repeatable)",
    )
    parser.add_argument(
        "--tls-ca", default=env("CQRS_GRPC_TLS_CA"), help="PEM file of the CA to trust (enables TLS)"
    )
    parser.add_argument(
        "--tls-cert", default=env("CQRS_GRPC_TLS_CERT"), help="client certificate (mutual TLS)"
    )
    parser.add_argument("--tls-key", default=env("CQRS_GRPC_TLS_KEY"), help="client private key (mutual TLS)")
    parser.add_argument("--tls-server-name", help="name to check the server certificate against")
    parser.add_argument("--tls", action="store_true", help="use TLS with the system's trusted roots")
    parser.add_argument(
        "--token",
        default=env("CQRS_GRPC_TOKEN"),
        help="bearer token sent with every call [env CQRS_GRPC_TOKEN]",
    )
    parser.add_argument("--token-file", type=Path, help="read the bearer token from this file")
    commands = parser.add_subparsers(dest="command", required=True)

    upload = commands.add_parser(
        "upload", help="store files of any size, streamed with a progress bar; prints one id per file"
    )
    upload.add_argument("paths", nargs="+", type=Path)
    upload.add_argument("--name", help="name to store a single file under (default: its file name)")
    upload.add_argument("--json", action="store_true", help="one JSON object per line")

    listing = commands.add_parser("list", help="the stored files")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")

    process = commands.add_parser("process", help="process files with a live progress bar")
    process.add_argument("file_ids", nargs="*")
    process.add_argument("--all", action="store_true", help="process every stored file")
    process.add_argument("--json", action="store_true", help="one JSON object per result, no progress bar")
    process.add_argument("--strict", action="store_true", help="exit 1 unless every file completed")

    watch = commands.add_parser("watch", help="print live events until Ctrl-C")
    watch.add_argument("--count", type=int, help="exit after this many events")
    watch.add_argument(
        "--after-sequence",
        type=int,
        default=None,
        help="first replay the events after this sequence (0: from the first; default: from now on); "
        "a drain, a worker restart or a drop for falling behind is bridged by reconnecting, "
        "with no gap and no duplicate",
    )
    watch.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)
    if args.command == "upload" and args.name and len(args.paths) != 1:
        parser.error("--name applies to a single file")
    if args.command == "process" and not (args.file_ids or args.all):
        parser.error("name file ids, or pass --all")
    return args


def connection(args: argparse.Namespace) -> Connection:
    metadata = []
    for pair in args.metadata:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--metadata {pair!r}: expected KEY=VALUE")
        metadata.append((key.strip().lower(), value))
    tls = None
    if args.tls or args.tls_ca or args.tls_cert:
        tls = TlsConfig.from_files(args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name)
    token = args.token_file.read_text().strip() if args.token_file else args.token
    return Connection(
        target=args.address, tls=tls, timeout=args.timeout, metadata=tuple(metadata), token=token or None
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        with FileClient(connection(args)) as client:
            return _COMMANDS[args.command](client, args, out, err)
    except FileServiceError as error:
        reason = f" ({error.reason})" if error.reason else ""
        err.print(f"[red]error:[/] {error.code.name}{reason}: {error.details}")
        return 1
    except KeyboardInterrupt:
        err.print("interrupted: call cancelled")
        return 130


def _upload(client: FileClient, args: argparse.Namespace, out: Console, err: Console) -> int:
    for path in args.paths:
        name = args.name or path.name
        with path.open("rb") as file:
            if args.json:
                print(json.dumps(as_json(client.upload(name, file))), flush=True)
                continue
            info = _upload_with_bar(client, name, file, err)
        out.print(f"{info.file_id}  {info.name}  {info.size} B")
    return 0


def _upload_with_bar(client: FileClient, name: str, file: BinaryIO, err: Console) -> FileInfo:
    """The bar goes to stderr, so that stdout keeps one "id  name  size" line per file for scripts."""
    with Progress(*_UPLOAD_COLUMNS, console=err, transient=False) as progress:
        task = progress.add_task(name, total=os.fstat(file.fileno()).st_size or None)
        info = client.upload(name, file, progress=lambda sent, _: progress.update(task, completed=sent))
        progress.update(task, completed=info.size, total=info.size)
    return info


def _list(client: FileClient, args: argparse.Namespace, out: Console, err: Console) -> int:
    for info in client.list_files():
        if args.json:
            print(json.dumps(as_json(info)), flush=True)
        else:
            out.print(f"{info.file_id}  {info.size:>10} B  {info.uploaded_at:%Y-%m-%d %H:%M:%S}  {info.name}")
    return 0


def _process(client: FileClient, args: argparse.Namespace, out: Console, err: Console) -> int:
    ids = list(args.file_ids) or [f.file_id for f in client.list_files()]
    results: list[ProcessResult] = []
    if args.json:
        for result in client.process(ids):
            results.append(result)
            print(json.dumps(as_json(result)), flush=True)
    else:
        columns = (TextColumn("processing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=out, transient=False) as progress:
            task = progress.add_task("files", total=len(ids))
            for result in client.process(ids):
                results.append(result)
                progress.console.print(_line(result))
                progress.update(task, completed=result.index)
        done = sum(r.ok for r in results)
        out.print(f"{done} of {len(results)} completed")
    return 1 if args.strict and not all(r.ok for r in results) else 0


def _line(result: ProcessResult) -> str:
    mark = _MARKS.get(result.status, "·")
    head = f"{mark} {result.index}/{result.total} {result.file_id}"
    if result.ok:
        return (
            f"{head} {result.name}: {result.size} B, {result.line_count} lines, sha256 {result.sha256[:12]}…"
        )
    return f"{head} {result.status}" + (f": {result.error}" if result.error else "")


def _watch(client: FileClient, args: argparse.Namespace, out: Console, err: Console) -> int:
    seen = 0
    with client.watch(after_sequence=args.after_sequence) as events:
        state = "subscribed" if events.subscribed else "the server did not confirm a subscription"
        err.print(f"watching {args.address} ({state}; Ctrl-C to stop)")
        for event in events:
            if args.json:
                print(json.dumps(as_json(event)), flush=True)
            else:
                detail = event.status or f"{event.size} B"
                when = f"{event.occurred_at:%H:%M:%S}"
                out.print(f"#{event.sequence} {when} {event.kind} {event.file_id} {event.name} {detail}")
            seen += 1
            if args.count is not None and seen >= args.count:
                break
    return 0


_COMMANDS = {"upload": _upload, "list": _list, "process": _process, "watch": _watch}


if __name__ == "__main__":
    sys.exit(main())
