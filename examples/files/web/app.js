// Wires the page's three parts: files (upload, list, select), the batch and the live feed.

import { BatchPanel } from "./batch.js";
import { EventFeed } from "./feed.js";
import { FilesPanel } from "./files.js";

const files = new FilesPanel(document.querySelector("#files"));
const batch = new BatchPanel(document.querySelector("#batch"));
const feed = new EventFeed(document.querySelector("#feed"));
const processButton = document.querySelector("#process");

function updateProcessButton() {
  const count = files.selectedIds().length;
  processButton.disabled = count === 0 || batch.running;
  processButton.textContent = count ? `Process ${count} selected` : "Process selected";
}

files.onSelectionChange = updateProcessButton;
batch.onResult = (result) => files.setStatus(result.fileId, result.status);

let refreshTimer = null;
feed.onEvent = (event) => {
  if (event.kind === "file_processed") files.setStatus(event.fileId, event.status);
  if (event.kind === "file_uploaded" && !files.has(event.fileId)) {
    // an upload from elsewhere: reload the list once the burst is over
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => files.refresh(), 300);
  }
};

processButton.addEventListener("click", async () => {
  const ids = files.selectedIds();
  if (!ids.length) return;
  const run = batch.run(ids.map((fileId) => ({ fileId, name: files.nameOf(fileId) })));
  updateProcessButton();
  await run;
  updateProcessButton();
});

feed.connect();
files.refresh();
