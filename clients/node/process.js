#!/usr/bin/env node
'use strict';
// Usage: node process.js [--address host:port] [--tls-ca ca.pem [--tls-cert c.pem --tls-key c.key]]
//                         [--tls-server-name name] [--token-file path] FILE_ID...
// Environment: CQRS_GRPC_TARGET, CQRS_GRPC_TLS_CA, CQRS_GRPC_TLS_CERT, CQRS_GRPC_TLS_KEY, CQRS_GRPC_TOKEN.
// Prints each streamed FileProcessedResult as one JSON line the moment it arrives.
// Ctrl-C (SIGINT) cancels the call (the server's handler is closed) and exits with 130;
// any other failure prints the gRPC status to stderr and exits with 1.
const fs = require('node:fs');
const { connect, credentialsFrom, timestampToIso, grpc } = require('./client');

function parseArgs(argv) {
  const env = process.env;
  let address = env.CQRS_GRPC_TARGET || '127.0.0.1:50051';
  const tls = { tlsCa: env.CQRS_GRPC_TLS_CA, tlsCert: env.CQRS_GRPC_TLS_CERT, tlsKey: env.CQRS_GRPC_TLS_KEY };
  tls.token = env.CQRS_GRPC_TOKEN;
  let serverName = null;
  const ids = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--address') address = argv[++i];
    else if (argv[i] === '--tls-ca') tls.tlsCa = argv[++i];
    else if (argv[i] === '--tls-cert') tls.tlsCert = argv[++i];
    else if (argv[i] === '--tls-key') tls.tlsKey = argv[++i];
    else if (argv[i] === '--tls-server-name') serverName = argv[++i];
    else if (argv[i] === '--token-file') tls.token = fs.readFileSync(argv[++i], 'utf8').trim();
    else ids.push(argv[i]);
  }
  return { address, ids, tls, serverName };
}

function main() {
  const { address, ids, tls, serverName } = parseArgs(process.argv.slice(2));
  if (ids.length === 0) {
    process.stderr.write('usage: node process.js [--address host:port] [--tls-ca ...] [--token-file ...] FILE_ID...\n');
    process.exit(2);
  }
  let credentials;
  try {
    credentials = credentialsFrom(tls);
  } catch (error) {
    process.stderr.write(`error: ${error.message}\n`);
    process.exit(2);
  }
  const options = serverName ? { 'grpc.ssl_target_name_override': serverName } : {};
  const client = connect(address, { credentials, options });
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
