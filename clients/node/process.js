#!/usr/bin/env node
'use strict';
// Usage: node process.js [--address host:port] FILE_ID...
// Prints each streamed FileProcessedResult as one JSON line the moment it arrives.
// Ctrl-C (SIGINT) cancels the call (the server's handler is closed) and exits with 130;
// any other failure prints the gRPC status to stderr and exits with 1.
const { connect, timestampToIso, grpc } = require('./client');

function parseArgs(argv) {
  let address = process.env.CQRS_GRPC_TARGET || '127.0.0.1:50051';
  const ids = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--address') address = argv[++i];
    else ids.push(argv[i]);
  }
  return { address, ids };
}

function main() {
  const { address, ids } = parseArgs(process.argv.slice(2));
  if (ids.length === 0) {
    process.stderr.write('usage: node process.js [--address host:port] FILE_ID...\n');
    process.exit(2);
  }
  const client = connect(address);
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
