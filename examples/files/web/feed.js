// The live event feed: WatchFileEvents over SSE. Each event's id is its sequence; a lost connection
// is resumed by the browser itself (Last-Event-ID), and a stream the server ended (drain, a slow
// reader) or that the user paused is reopened with ?lastEventId= so no event is missed or shown twice.

import { openStream } from "./rpc.js";
import { formatSize, formatTime, showError } from "./format.js";

const RETRYABLE = new Set(["UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"]);
const MAX_SHOWN = 200;
const MAX_BACKOFF_MS = 10_000;

export class EventFeed {
  constructor(root) {
    this.list = root.querySelector("#feed-list");
    this.state = root.querySelector("#feed-state");
    this.toggle = root.querySelector("#feed-toggle");
    this.error = root.querySelector("#feed-error");
    this.lastSequence = null; // the sequence to resume after; null: nothing known yet (0: from the first)
    this.stream = null;
    this.backoff = 500;
    this.timer = null;
    this.onEvent = () => {};
    this.toggle.addEventListener("click", () => (this.stream || this.timer ? this.pause() : this.connect()));
  }

  connect() {
    clearTimeout(this.timer);
    this.timer = null;
    this.setState("connecting", "Connecting…");
    this.stream = openStream("WatchFileEvents", {}, {
      lastEventId: this.lastSequence ?? undefined,
      resumable: true,
      onOpen: () => {
        this.backoff = 500;
        showError(this.error, null);
      },
      onRetry: () => this.setState("connecting", "Reconnecting…"),
      onStart: (id) => {
        // nothing shown yet: resume from where the feed started (0 on an empty stream: from the first)
        if (this.lastSequence === null && /^\d+$/.test(id || "")) this.lastSequence = Number(id);
        this.setState("live", "Live");
      },
      onItem: (event, id) => this.add(event, Number(id || event.sequence || 0)),
      onEnd: (error) => this.ended(error),
    });
  }

  /** Close the stream (the server's watch ends); connect() resumes after the last event shown. */
  pause() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.stream) this.stream.close();
    this.stream = null;
    this.setState("paused", "Paused");
  }

  ended(error) {
    this.stream = null;
    if (error && !RETRYABLE.has(error.code)) {
      showError(this.error, error);
      this.setState("closed", "Stopped");
      return;
    }
    if (error) showError(this.error, error);
    this.setState("connecting", `Reconnecting in ${Math.round(this.backoff / 1000)} s…`);
    this.timer = setTimeout(() => this.connect(), this.backoff);
    this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
  }

  add(event, sequence) {
    if (sequence && this.lastSequence !== null && sequence <= this.lastSequence) return; // shown already
    if (sequence) this.lastSequence = sequence;
    const item = document.createElement("li");
    item.dataset.kind = event.kind || "";
    item.dataset.sequence = String(sequence);
    const what =
      event.kind === "file_uploaded"
        ? `uploaded ${event.name || event.fileId} (${formatSize(event.size)})`
        : event.kind === "file_processed"
          ? `processed ${event.name || event.fileId}: ${(event.status || "unknown").replace("_", " ")}`
          : `${event.kind || "event"} ${event.fileId || ""}`;
    const time = document.createElement("time");
    time.dateTime = event.occurredAt || "";
    time.textContent = formatTime(event.occurredAt);
    const text = document.createElement("span");
    text.textContent = `#${sequence} ${what}`;
    item.append(time, text);
    this.list.prepend(item);
    while (this.list.children.length > MAX_SHOWN) this.list.lastChild.remove();
    this.onEvent(event);
  }

  setState(state, text) {
    this.state.dataset.state = state;
    this.state.textContent = text;
    this.toggle.textContent = state === "paused" || state === "closed" ? "Resume" : "Pause";
  }
}
