// Calls the demo's RPCs from the browser over the server's HTTP port: unary RPCs with the Connect
// protocol (POST, proto3 JSON), server-streaming RPCs over SSE (EventSource). Same origin only.

export const SERVICE = "/demo.files.v1.FileService";

/** An RPC that ended with a status other than OK: `code` is its name (NOT_FOUND...), `message` why. */
export class RpcError extends Error {
  constructor(code, message) {
    super(message ? `${code}: ${message}` : code);
    this.code = code;
    this.detail = message || "";
  }
}

/** POST one proto3 JSON request to a unary RPC; resolves with its JSON response, rejects with RpcError. */
export async function callUnary(method, request) {
  let response;
  try {
    response = await fetch(`${SERVICE}/${method}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(request),
    });
  } catch (err) {
    throw new RpcError("UNAVAILABLE", `the server cannot be reached (${err.message})`);
  }
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : {};
  } catch {
    body = null;
  }
  if (response.ok && body !== null) return body;
  // a Connect error: {"code": "not_found", "message": "..."}
  const code = body && typeof body.code === "string" ? body.code.toUpperCase() : `HTTP_${response.status}`;
  const message = body && typeof body.message === "string" ? body.message : text.slice(0, 200);
  throw new RpcError(code, message);
}

/**
 * Open a server-streaming RPC as SSE. `onItem(item, id)` gets each yielded message; `onEnd(error)` is
 * called once, with null for OK or an RpcError, after which the stream is closed (EventSource would
 * otherwise reconnect on its own). A lost connection ends a stream with UNAVAILABLE unless
 * `resumable`: then the browser reconnects by itself, sending Last-Event-ID (`onRetry` is told).
 * `lastEventId` resumes from an id on a fresh stream; `onStart(id)` is told where a resumable stream's
 * feed starts. Returns `{close()}`; closing does not call onEnd.
 */
export function openStream(method, request, options = {}) {
  const { onItem, onEnd, onOpen, onRetry, onStart, lastEventId, resumable = false } = options;
  const params = new URLSearchParams({ message: JSON.stringify(request) });
  if (lastEventId !== undefined && lastEventId !== null) params.set("lastEventId", String(lastEventId));
  const source = new EventSource(`${SERVICE}/${method}?${params}`);
  let ended = false;
  const finish = (error) => {
    if (ended) return;
    ended = true;
    source.close();
    if (onEnd) onEnd(error);
  };
  source.onopen = () => onOpen && onOpen();
  source.onmessage = (event) => {
    let item;
    try {
      item = JSON.parse(event.data);
    } catch {
      finish(new RpcError("INTERNAL", "the server sent an item that is not JSON"));
      return;
    }
    if (onItem) onItem(item, event.lastEventId);
  };
  // a resumable stream opens with where its feed starts: the id to resume from if no item comes
  source.addEventListener("subscribed", (event) => onStart && onStart(event.lastEventId));
  source.addEventListener("end", (event) => {
    let status = {};
    try {
      status = JSON.parse(event.data);
    } catch {
      status = { code: "UNKNOWN", message: "the stream ended with a status that is not JSON" };
    }
    const code = status.code || "UNKNOWN";
    finish(code === "OK" ? null : new RpcError(code, status.message || ""));
  });
  source.onerror = () => {
    if (ended) return;
    // CONNECTING: the browser reconnects by itself (sending Last-Event-ID); CLOSED: it gave up,
    // e.g. the server answered with an HTTP error instead of a stream.
    if (source.readyState === EventSource.CLOSED || !resumable) {
      finish(new RpcError("UNAVAILABLE", "the connection to the server was lost"));
    } else if (onRetry) {
      onRetry();
    }
  };
  return {
    close() {
      ended = true;
      source.close();
    },
  };
}
