'use strict';
// A client of demo.files.v1.FileService built at run time from the .proto files in protos/:
// no generated code and no copied definitions, so it can never drift from the contract.
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

function timestampToIso(ts) {
  if (!ts) return null;
  const millis = Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6);
  return new Date(millis).toISOString();
}

module.exports = { connect, credentialsFrom, loadFileService, timestampToIso, grpc };
