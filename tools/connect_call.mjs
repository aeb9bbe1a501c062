// One RPC through @connectrpc/connect-node, as the HTTP-port tests call it:
//   node tools/connect_call.mjs BASE_URL IMAGE pkg.Service/Method 'JSON' [grpcweb|connect]
// IMAGE is the descriptor set `make proto` builds with buf (gen/protos.binpb). Each response is
// printed as one line of proto3 JSON; an error as {"error": {"code": ..., "message": ...}}, exit 1.
// AUTHORIZATION in the environment is sent as the authorization header.
import { readFileSync } from "node:fs";
import { createFileRegistry, fromBinary, fromJson, toJson } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";

const [baseUrl, image, path, requestJson, protocol = "grpcweb"] = process.argv.slice(2);
const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(image)));
const [serviceName, methodName] = path.split("/");
const service = registry.getService(serviceName);
const method = service.methods.find((m) => m.name === methodName);
const makeTransport = protocol === "connect" ? createConnectTransport : createGrpcWebTransport;
const client = createClient(service, makeTransport({ baseUrl, httpVersion: "1.1" }));
const input = fromJson(method.input, JSON.parse(requestJson), { registry });
const headers = process.env.AUTHORIZATION ? { authorization: process.env.AUTHORIZATION } : {};
const print = (message) => console.log(JSON.stringify(toJson(method.output, message, { registry })));
try {
  if (method.methodKind === "server_streaming") {
    for await (const item of client[method.localName](input, { headers })) print(item);
  } else {
    print(await client[method.localName](input, { headers }));
  }
} catch (err) {
  const error = ConnectError.from(err);
  console.log(JSON.stringify({ error: { code: Code[error.code], message: error.rawMessage } }));
  process.exit(1);
}
