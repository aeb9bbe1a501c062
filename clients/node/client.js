'use strict';
// A client of demo.files.v1.FileService built at run time from the .proto files in protos/:
// no generated code and no copied definitions, so it can never drift from the contract.
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

function connect(address, { credentials = grpc.credentials.createInsecure() } = {}) {
  const FileService = loadFileService();
  return new FileService(address, credentials);
}

function timestampToIso(ts) {
  if (!ts) return null;
  const millis = Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6);
  return new Date(millis).toISOString();
}

module.exports = { connect, loadFileService, timestampToIso, grpc };
