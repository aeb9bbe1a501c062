'use strict';
// A client of demo.files.v1.FileService built at run time from the .proto files in protos/:
// no generated code and no copied definitions, so it can never drift from the contract.
const crypto = require('node:crypto');
const { once } = require('node:events');
const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTOS = path.resolve(__dirname, '..', '..', 'protos');

function loadFileService() {
  const definition = protoLoader.loadSync(path.join(PROTOS, 'demo/files/v1/files.proto'), {
    includeDirs: [PROTOS],
    keepCase: true, // field names as in the .proto: file_id, processed_at
    longs: Number, // int64 sizes and sequence numbers as plain numbers
    defaults: true,
  });
  return grpc.loadPackageDefinition(definition).demo.files.v1.FileService;
}

// Channel credentials from PEM paths: tlsCa (trust), tlsCert + tlsKey (mutual TLS), token (bearer).
// No TLS option and no token: plaintext. A token needs TLS (grpc-js refuses call credentials on a
// plaintext channel, and a token must not cross the network in clear).
function credentialsFrom({ tlsCa, tlsCert, tlsKey, token } = {}) {
  if (!tlsCa && !tlsCert && !tlsKey) {
    if (token) throw new Error('a token needs TLS: pass --tls-ca (CQRS_GRPC_TLS_CA)');
    return grpc.credentials.createInsecure();
  }
  if (Boolean(tlsCert) !== Boolean(tlsKey)) throw new Error('mutual TLS needs both --tls-cert and --tls-key');
  const read = (file) => (file ? fs.readFileSync(file) : null);
  let credentials = grpc.credentials.createSsl(read(tlsCa), read(tlsKey), read(tlsCert));
  if (token) {
    const bearer = grpc.credentials.createFromMetadataGenerator((_params, callback) => {
      const metadata = new grpc.Metadata();
      metadata.set('authorization', `Bearer ${token}`);
      callback(null, metadata);
    });
    credentials = grpc.credentials.combineChannelCredentials(credentials, bearer);
  }
  return credentials;
}

function connect(address, { credentials = grpc.credentials.createInsecure(), options = {} } = {}) {
  const FileService = loadFileService();
  return new FileService(address, credentials, options);
}

// Command-line flags shared by the commands: --address and the TLS/token flags (with their
// CQRS_GRPC_* environment variables), plus the value flags a command names in `extra`
// (e.g. ['--name']). Everything else is positional.
function parseArgs(argv, extra = []) {
  const env = process.env;
  const parsed = { address: env.CQRS_GRPC_TARGET || '127.0.0.1:50051', serverName: null, positional: [] };
  const tls = { tlsCa: env.CQRS_GRPC_TLS_CA, tlsCert: env.CQRS_GRPC_TLS_CERT, tlsKey: env.CQRS_GRPC_TLS_KEY };
  tls.token = env.CQRS_GRPC_TOKEN;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--address') parsed.address = argv[++i];
    else if (argv[i] === '--tls-ca') tls.tlsCa = argv[++i];
    else if (argv[i] === '--tls-cert') tls.tlsCert = argv[++i];
    else if (argv[i] === '--tls-key') tls.tlsKey = argv[++i];
    else if (argv[i] === '--tls-server-name') parsed.serverName = argv[++i];
    else if (argv[i] === '--token-file') tls.token = fs.readFileSync(argv[++i], 'utf8').trim();
    else if (extra.includes(argv[i])) parsed[argv[i].slice(2)] = argv[++i];
    else parsed.positional.push(argv[i]);
  }
  parsed.tls = tls;
  return parsed;
}

// A client for the parsed flags; exits with 2 on flags that cannot make one.
function connectFromArgs({ address, tls, serverName }) {
  let credentials;
  try {
    credentials = credentialsFrom(tls);
  } catch (error) {
    process.stderr.write(`error: ${error.message}\n`);
    process.exit(2);
  }
  const options = serverName ? { 'grpc.ssl_target_name_override': serverName } : {};
  return connect(address, { credentials, options });
}

// Streams `source` (a Readable of Buffers, such as fs.createReadStream(path)) to UploadFileChunks:
// the name, each chunk as it is read (waiting for 'drain' when grpc's buffer is full, so a large file
// is never held in memory), then the SHA-256 of it all, which tells the server the upload is complete.
// Returns { call, result }: `result` resolves to the FileInfo, or rejects with the call's error (the
// server's status, such as RESOURCE_EXHAUSTED past the upload limit, ends the sending at once);
// `call.cancel()` abandons the upload and the server keeps nothing of it.
function uploadFile(client, name, source, { onProgress, metadata = new grpc.Metadata(), deadline } = {}) {
  let ended = false;
  let call;
  const answered = new Promise((resolve, reject) => {
    call = client.UploadFileChunks(metadata, deadline ? { deadline } : {}, (error, info) => {
      ended = true;
      if (error) reject(error);
      else resolve(info);
    });
  });
  const send = async () => {
    const hash = crypto.createHash('sha256');
    let sent = 0;
    call.write({ name });
    for await (const chunk of source) {
      if (ended) break; // the server answered early (an error): stop reading the source
      hash.update(chunk);
      sent += chunk.length;
      if (!call.write({ data: chunk })) {
        await Promise.race([once(call, 'drain').catch(() => {}), answered.catch(() => {})]);
      }
      if (onProgress) onProgress(sent);
    }
    if (!ended) {
      call.write({ sha256: hash.digest('hex') });
      call.end();
    }
  };
  const sending = send().catch((error) => {
    call.cancel(); // the source failed: the server must not keep a partial file
    throw error;
  });
  const result = Promise.all([sending, answered]).then(([, info]) => info);
  return { call, result };
}

function timestampToIso(ts) {
  if (!ts) return null;
  const millis = Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6);
  return new Date(millis).toISOString();
}

module.exports = {
  connect,
  connectFromArgs,
  credentialsFrom,
  loadFileService,
  parseArgs,
  timestampToIso,
  uploadFile,
  grpc,
};
