// Export / Import (issue 12): a section of the room settings dialog.
//
// Export downloads GET /api/export (the bytes are counted while they stream in, then saved as a
// file). Import uploads a zip to POST /api/import with upload progress, then shows the server's
// report: per section what was created, already there or skipped, channels made or remapped, and
// every warning. The server tells every open page to reload the room (a `reset` event).
import { refreshSession, request } from "./api.js";
import { el, toast } from "./dom.js";

const SECTIONS = ["messages", "jobs", "rules", "summaries", "schedules", "templates"];
const MB = 1024 * 1024;
const LIMIT = 50 * MB;

function sessionSecret() {
  return document.querySelector('meta[name="bc-session"]')?.content || "";
}

function size(bytes) {
  return bytes >= MB ? `${(bytes / MB).toFixed(1)} MB` : `${Math.max(1, Math.round(bytes / 1024))} KB`;
}

/** Upload with progress (fetch cannot report it); resolves to {status, data}. */
function upload(file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/import");
    xhr.setRequestHeader("X-Backchannel-Session", sessionSecret());
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (ev) => {
      if (ev.lengthComputable) onProgress(ev.loaded / ev.total);
    });
    xhr.addEventListener("load", () => resolve({ status: xhr.status, data: xhr.response }));
    xhr.addEventListener("error", () => reject(new Error("the upload failed (network error)")));
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

class ArchivePanel {
  constructor() {
    const box = el("fieldset", "settings-archive");
    box.append(el("legend", null, "Export / import"));
    box.append(el("p", "field-hint muted small",
      "Download the whole room (messages, jobs, rules, summaries, schedules, templates, images) as a zip, or merge one in. Importing the same archive again changes nothing."));
    const row = el("div", "archive-buttons");
    this.exportBtn = el("button", "btn small", "Export room");
    this.exportBtn.type = "button";
    this.importBtn = el("button", "btn small", "Import…");
    this.importBtn.type = "button";
    this.file = el("input");
    this.file.type = "file";
    this.file.accept = ".zip,application/zip";
    this.file.className = "sr-only";
    this.file.id = "archive-file";
    this.file.tabIndex = -1;
    this.file.setAttribute("aria-label", "Archive to import");
    row.append(this.exportBtn, this.importBtn, this.file);
    this.progress = el("progress", "archive-progress");
    this.progress.max = 1;
    this.progress.hidden = true;
    this.progress.setAttribute("aria-label", "Archive progress");
    this.status = el("p", "archive-status small");
    this.status.setAttribute("role", "status");
    this.status.setAttribute("aria-live", "polite");
    this.report = el("div", "archive-report");
    this.report.hidden = true;
    box.append(row, this.progress, this.status, this.report);
    this.el = box;
    this.exportBtn.addEventListener("click", () => this.export());
    this.importBtn.addEventListener("click", () => this.file.click());
    this.file.addEventListener("change", () => {
      const chosen = this.file.files?.[0];
      this.file.value = "";
      if (chosen) this.import(chosen);
    });
  }

  busy(on, text) {
    this.exportBtn.disabled = on;
    this.importBtn.disabled = on;
    this.progress.hidden = !on;
    if (on) this.progress.removeAttribute("value");
    this.status.textContent = text;
  }

  async export() {
    this.report.hidden = true;
    this.busy(true, "Preparing the export…");
    try {
      let res = await fetch("/api/export", { credentials: "same-origin" });
      if (res.status === 401 && (await refreshSession())) res = await fetch("/api/export", { credentials: "same-origin" });
      if (!res.ok) {
        const data = await res.json().catch(() => null);
        throw new Error(data?.detail || `HTTP ${res.status}`);
      }
      const reader = res.body.getReader();
      const parts = [];
      let got = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        parts.push(value);
        got += value.length;
        this.status.textContent = `Downloading… ${size(got)}`;
      }
      const name = /filename="([^"]+)"/.exec(res.headers.get("content-disposition") || "")?.[1] || "backchannel-export.zip";
      const url = URL.createObjectURL(new Blob(parts, { type: "application/zip" }));
      const a = el("a");
      a.href = url;
      a.download = name;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      this.busy(false, `Exported ${name} (${size(got)}).`);
    } catch (err) {
      this.busy(false, `Export failed: ${err.message}`);
    }
  }

  async import(file) {
    this.report.hidden = true;
    if (file.size > LIMIT) {
      this.status.textContent = `${file.name} is ${size(file.size)}; archives can be at most 50 MB.`;
      return;
    }
    this.busy(true, `Uploading ${file.name}…`);
    try {
      let { status, data } = await upload(file, (done) => {
        this.progress.value = done;
        if (done >= 1) {
          this.progress.removeAttribute("value");
          this.status.textContent = "Merging into the room…";
        }
      });
      if (status === 401 && (await refreshSession())) {
        const form = new FormData();
        form.append("file", file, file.name);
        data = await request("POST", "/api/import", { body: form });
        status = 200;
      }
      if (status !== 200) throw new Error(data?.detail || `HTTP ${status}`);
      this.busy(false, `Imported ${file.name}.`);
      this.show(data);
      toast("Import finished: see the report in the room settings.");
    } catch (err) {
      this.busy(false, `Import failed: ${err.message}`);
    }
  }

  show(report) {
    const table = el("table", "archive-table");
    const cap = el("caption", "sr-only", "Import report");
    const head = el("tr");
    for (const h of ["", "created", "already here", "skipped"]) head.append(el("th", null, h));
    head.querySelectorAll("th").forEach((th) => th.setAttribute("scope", "col"));
    table.append(cap, head);
    for (const name of SECTIONS) {
      const c = report.sections?.[name] || { created: 0, duplicates: 0, skipped: 0 };
      const tr = el("tr");
      const th = el("th", null, name);
      th.setAttribute("scope", "row");
      tr.append(th, el("td", null, String(c.created)), el("td", null, String(c.duplicates)), el("td", null, String(c.skipped)));
      table.append(tr);
    }
    const parts = [table];
    const made = report.channels?.created || [];
    if (made.length) parts.push(el("p", "small", `Channels created: ${made.map((c) => `#${c}`).join(", ")}`));
    for (const [from, to] of Object.entries(report.channels?.remapped || {})) {
      parts.push(el("p", "small", `#${from} went to #${to}`));
    }
    if (report.warnings?.length) {
      const list = el("ul", "archive-warnings small");
      list.setAttribute("aria-label", "Import warnings");
      for (const w of report.warnings) list.append(el("li", null, w));
      parts.push(list);
    }
    this.report.replaceChildren(...parts);
    this.report.hidden = false;
  }
}

/** Put the Export / Import section into the settings form, just above its buttons row. */
export function mountArchive(form, buttonsRow) {
  const panel = new ArchivePanel();
  form.insertBefore(panel.el, buttonsRow);
  return panel;
}
