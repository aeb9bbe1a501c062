// The files part: upload (Connect unary UploadFile), the list (ListFiles, GetFileStatus) and the
// selection that the batch processes.

import { callUnary } from "./rpc.js";
import { base64Of, formatSize, formatTime, showError } from "./format.js";

export class FilesPanel {
  /** `root` holds the upload form, the table body and the error region (see index.html). */
  constructor(root) {
    this.form = root.querySelector("#upload-form");
    this.input = root.querySelector("#upload-input");
    this.uploadStatus = root.querySelector("#upload-status");
    this.error = root.querySelector("#files-error");
    this.body = root.querySelector("#files-body");
    this.selectAll = root.querySelector("#select-all");
    this.rows = new Map(); // file id -> <tr>
    this.statuses = new Map(); // file id -> its latest known status, shown at once by a new row
    this.told = new Map(); // file id -> how many statuses a batch or the feed told
    this.onSelectionChange = () => {};
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.upload([...this.input.files]);
    });
    this.selectAll.addEventListener("change", () => {
      for (const box of this.body.querySelectorAll("input[type=checkbox]")) box.checked = this.selectAll.checked;
      this.onSelectionChange();
    });
    root.querySelector("#refresh").addEventListener("click", () => this.refresh());
  }

  /** Upload each file in turn; the list is refreshed after the last one. */
  async upload(files) {
    if (!files.length) {
      showError(this.error, new Error("Choose one or more files first."));
      return;
    }
    showError(this.error, null);
    const failures = [];
    for (const [position, file] of files.entries()) {
      this.uploadStatus.textContent = `Uploading ${file.name} (${position + 1} of ${files.length})…`;
      try {
        const info = await callUnary("UploadFile", { name: file.name, content: await base64Of(file) });
        this.rememberSelected(info.fileId);
      } catch (error) {
        failures.push(`${file.name}: ${error.message}`);
      }
    }
    const done = files.length - failures.length;
    this.uploadStatus.textContent = `Uploaded ${done} of ${files.length} file${files.length === 1 ? "" : "s"}.`;
    if (failures.length) showError(this.error, new Error(failures.join("\n")));
    this.form.reset();
    await this.refresh();
  }

  rememberSelected(fileId) {
    this.pendingSelection = this.pendingSelection || new Set();
    this.pendingSelection.add(fileId);
  }

  /** Reload the list from ListFiles, keeping the selection and asking each file's status. */
  async refresh() {
    let list;
    try {
      list = await callUnary("ListFiles", {});
    } catch (error) {
      showError(this.error, error);
      return;
    }
    const selected = new Set([...this.selectedIds(), ...(this.pendingSelection || [])]);
    this.pendingSelection = null;
    this.body.replaceChildren();
    this.rows.clear();
    for (const file of list.files || []) this.body.append(this.row(file, selected.has(file.fileId)));
    this.body.closest("table").hidden = this.rows.size === 0;
    this.onSelectionChange();
    await Promise.all([...this.rows.keys()].map((fileId) => this.loadStatus(fileId)));
  }

  row(file, checked) {
    const row = document.createElement("tr");
    row.dataset.fileId = file.fileId;
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = checked;
    box.id = `select-${file.fileId}`;
    box.addEventListener("change", () => this.onSelectionChange());
    const label = document.createElement("label");
    label.htmlFor = box.id;
    label.textContent = file.name;
    const cells = [box, label, formatSize(file.size), formatTime(file.uploadedAt), "…"];
    for (const content of cells) {
      const cell = document.createElement("td");
      cell.append(content);
      row.append(cell);
    }
    row.lastChild.className = "status";
    this.rows.set(file.fileId, row);
    this.showStatus(file.fileId);
    return row;
  }

  /** Ask GetFileStatus; its answer is dropped if a batch or the feed told a status meanwhile. */
  async loadStatus(fileId) {
    const mark = this.told.get(fileId) || 0;
    let status;
    try {
      status = (await callUnary("GetFileStatus", { fileId })).status;
    } catch (error) {
      status = error.code === "NOT_FOUND" ? "unknown" : "?";
    }
    if ((this.told.get(fileId) || 0) === mark) this.showStatus(fileId, status);
  }

  /** Show a file's latest status, as a batch result or a feed event told it. */
  setStatus(fileId, status) {
    if (!status) return;
    this.told.set(fileId, (this.told.get(fileId) || 0) + 1);
    this.showStatus(fileId, status);
  }

  showStatus(fileId, status = this.statuses.get(fileId)) {
    if (status) this.statuses.set(fileId, status);
    const row = this.rows.get(fileId);
    if (!row || !status) return;
    const cell = row.querySelector(".status");
    cell.textContent = status.replace("_", " ");
    cell.dataset.status = status;
  }

  has(fileId) {
    return this.rows.has(fileId);
  }

  nameOf(fileId) {
    const row = this.rows.get(fileId);
    return row ? row.querySelector("label").textContent : fileId;
  }

  selectedIds() {
    return [...this.body.querySelectorAll("input[type=checkbox]:checked")].map(
      (box) => box.closest("tr").dataset.fileId,
    );
  }
}
