#!/usr/bin/env node
'use strict';
// Usage: node upload.js [--address host:port] [--tls-ca ca.pem [--tls-cert c.pem --tls-key c.key]]
//                        [--tls-server-name name] [--token-file path] [--name NAME] PATH
// Environment: CQRS_GRPC_TARGET, CQRS_GRPC_TLS_CA, CQRS_GRPC_TLS_CERT, CQRS_GRPC_TLS_KEY, CQRS_GRPC_TOKEN.
// Streams the file to UploadFileChunks (any size: it is read and sent in 64 KiB chunks) and prints
// the stored FileInfo as one JSON line; on a terminal, stderr shows the progress.
// Ctrl-C (SIGINT) cancels the upload (the server keeps nothing of it) and exits with 130; any other
// failure prints the gRPC status to stderr and exits with 1.
const fs = require('node:fs');
const path = require('node:path');
const { connectFromArgs, parseArgs, timestampToIso, uploadFile, grpc } = require('./client');

function main() {
  const args = parseArgs(process.argv.slice(2), ['--name']);
  if (args.positional.length !== 1) {
    process.stderr.write('usage: node upload.js [--address host:port] [--tls-ca ...] [--name NAME] PATH\n');
    process.exit(2);
  }
  const file = args.positional[0];
  const name = args.name || path.basename(file);
  const client = connectFromArgs(args);
  const source = fs.createReadStream(file); // 64 KiB chunks
  const total = fs.statSync(file).size;
  const onProgress = process.stderr.isTTY
    ? (sent) => process.stderr.write(`\ruploading ${name}: ${sent}/${total || '?'} bytes`)
    : undefined;
  const { call, result } = uploadFile(client, name, source, { onProgress });
  let interrupted = false;

  process.once('SIGINT', () => {
    interrupted = true;
    call.cancel(); // the server deletes what it received; the result rejects with CANCELLED
    source.destroy();
  });

  result.then(
    (info) => {
      if (onProgress) process.stderr.write('\n');
      process.stdout.write(JSON.stringify({ ...info, uploaded_at: timestampToIso(info.uploaded_at) }) + '\n');
    },
    (error) => {
      if (interrupted && error.code === grpc.status.CANCELLED) {
        process.stderr.write('cancelled\n');
        process.exit(130); // now: a read from a pipe still pending in the background must not hold us
      } else if (error.code !== undefined) {
        process.stderr.write(`error: ${grpc.status[error.code]}: ${error.details}\n`);
        process.exitCode = 1;
      } else {
        process.stderr.write(`error: ${error.message}\n`);
        process.exitCode = 1;
      }
    },
  ).finally(() => client.close());
}

main();
