#!/usr/bin/env node
'use strict';
// Usage: node process.js [--address host:port] [--tls-ca ca.pem [--tls-cert c.pem --tls-key c.key]]
//                         [--tls-server-name name] [--token-file path] FILE_ID...
// Environment: CQRS_GRPC_TARGET, CQRS_GRPC_TLS_CA, CQRS_GRPC_TLS_CERT, CQRS_GRPC_TLS_KEY, CQRS_GRPC_TOKEN.
// Prints each streamed FileProcessedResult as one JSON line the moment it arrives.
// Ctrl-C (SIGINT) cancels the call (the server's handler is closed) and exits with 130;
// any other failure prints the gRPC status to stderr and exits with 1.
const { connectFromArgs, parseArgs, timestampToIso, grpc } = require('./client');

function main() {
  const args = parseArgs(process.argv.slice(2));
  const ids = args.positional;
  if (ids.length === 0) {
    process.stderr.write('usage: node process.js [--address host:port] [--tls-ca ...] [--token-file ...] FILE_ID...\n');
    process.exit(2);
  }
  const client = connectFromArgs(args);
  const call = client.ProcessFiles({ file_ids: ids });
  let interrupted = false;

  process.once('SIGINT', () => {
    interrupted = true;
    call.cancel(); // ends the stream on the server too; 'error' follows with CANCELLED
  });

  call.on('data', (result) => {
    const line = { ...result, processed_at: timestampToIso(result.processed_at) };
    process.stdout.write(JSON.stringify(line) + '\n');
  });
  call.on('error', (error) => {
    client.close();
    if (interrupted && error.code === grpc.status.CANCELLED) {
      process.stderr.write('cancelled\n');
      process.exitCode = 130;
      return;
    }
    process.stderr.write(`error: ${grpc.status[error.code]}: ${error.details}\n`);
    process.exitCode = 1;
  });
  call.on('end', () => client.close());
}

main();
