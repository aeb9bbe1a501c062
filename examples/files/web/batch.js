// The batch part: ProcessFiles over SSE, one progress bar per file and one for the batch.
// ProcessFiles streams one result per file, in order, when that file is done: the file being worked
// on shows an indeterminate bar, and a bar fills when its result arrives.

import { openStream } from "./rpc.js";
import { formatSize, showError } from "./format.js";

export class BatchPanel {
  constructor(root) {
    this.list = root.querySelector("#batch-list");
    this.overall = root.querySelector("#batch-progress");
    this.summary = root.querySelector("#batch-summary");
    this.error = root.querySelector("#batch-error");
    this.stream = null;
    this.onResult = () => {};
  }

  get running() {
    return this.stream !== null;
  }

  /** Process `files` ([{fileId, name}]) in one ProcessFiles call; resolves when its stream has ended. */
  run(files) {
    this.stop();
    showError(this.error, null);
    this.rows = files.map((file) => this.row(file));
    this.list.replaceChildren(...this.rows.map((row) => row.item));
    this.overall.max = files.length;
    this.overall.value = 0;
    this.summary.textContent = `Processing ${files.length} file${files.length === 1 ? "" : "s"}…`;
    this.markWorking(0);
    return new Promise((resolve) => {
      this.stream = openStream("ProcessFiles", { fileIds: files.map((file) => file.fileId) }, {
        onItem: (result) => this.show(result),
        onEnd: (error) => {
          this.stream = null;
          this.finish(error);
          resolve(error);
        },
      });
    });
  }

  stop() {
    if (this.stream) this.stream.close();
    this.stream = null;
  }

  row(file) {
    const item = document.createElement("li");
    item.dataset.fileId = file.fileId;
    BatchPanel.rowCount = (BatchPanel.rowCount || 0) + 1;
    const id = `progress-${BatchPanel.rowCount}`;
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = file.name;
    const bar = document.createElement("progress");
    bar.id = id;
    bar.max = 100;
    bar.value = 0;
    const detail = document.createElement("span");
    detail.className = "detail";
    detail.textContent = "queued";
    item.append(label, bar, detail);
    return { item, bar, detail };
  }

  markWorking(position) {
    const row = this.rows[position];
    if (!row) return;
    row.bar.removeAttribute("value"); // indeterminate: being processed now
    row.detail.textContent = "processing…";
  }

  show(result) {
    const position = (result.index || 1) - 1;
    const row = this.rows[position];
    if (!row) return;
    const status = result.status || "unknown";
    row.bar.value = 100;
    row.item.dataset.status = status;
    row.detail.textContent =
      status === "completed"
        ? `completed · ${formatSize(result.size)} · ${result.lineCount || 0} lines`
        : status === "failed"
          ? `failed: ${result.error || "no reason given"}`
          : status.replace("_", " ");
    this.overall.value = result.index || position + 1;
    this.summary.textContent = `${this.overall.value} of ${result.total || this.rows.length} processed`;
    this.markWorking(position + 1);
    this.onResult(result);
  }

  finish(error) {
    for (const row of this.rows) {
      if (!row.item.dataset.status) {
        row.bar.value = 0;
        row.detail.textContent = "not processed";
      }
    }
    if (error) {
      showError(this.error, error);
      this.summary.textContent = `Stopped after ${this.overall.value} of ${this.rows.length}.`;
    } else {
      this.summary.textContent = `Done: ${this.overall.value} of ${this.rows.length} processed.`;
    }
  }
}
