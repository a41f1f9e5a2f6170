// Full-text search across channels, shown in a side panel; a result jumps to its message.
import { api } from "./api.js";
import { $, el, fmtFull, fmtTime, snippet } from "./dom.js";

export class Search {
  constructor(app) {
    this.app = app;
    this.panel = $("search-panel");
    this.input = $("search-input");
    $("search-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.run(this.input.value);
    });
    $("search-close").addEventListener("click", () => this.close());
    this.panel.addEventListener("keydown", (ev) => ev.key === "Escape" && this.close());
    this.input.addEventListener("keydown", (ev) => ev.key === "Escape" && this.close());
  }

  async run(query) {
    const q = query.trim();
    if (!q) return;
    this.input.value = q;
    this.panel.hidden = false;
    const summary = $("search-summary");
    const results = $("search-results");
    summary.textContent = "Searching…";
    results.replaceChildren();
    let found;
    try {
      found = (await api.search(q)).messages;
    } catch (err) {
      summary.textContent = `Search failed: ${err.message}`;
      return;
    }
    summary.textContent = found.length
      ? `${found.length}${found.length === 50 ? "+" : ""} result${found.length === 1 ? "" : "s"} for “${q}”`
      : `No messages match “${q}”.`;
    const terms = q.toLowerCase().split(/\s+/).filter((t) => t.length > 1).map((t) => t.replace(/["*]/g, ""));
    for (const msg of found) {
      const li = el("li");
      const btn = el("button", "search-hit");
      btn.type = "button";
      const meta = el("span", "hit-meta");
      meta.append(el("span", "hit-channel", `#${msg.channel}`), el("strong", null, msg.sender));
      const time = el("time", null, fmtTime(msg.created_at));
      time.title = fmtFull(msg.created_at);
      meta.append(time);
      const text = el("span", "hit-text");
      highlight(text, snippet(msg.text, 160), terms);
      btn.append(meta, text);
      btn.addEventListener("click", () => {
        // On a phone the panel covers the timeline: get out of the way of the message.
        if (window.matchMedia("(max-width: 760px)").matches) this.panel.hidden = true;
        this.app.jump(msg.id, msg.channel);
      });
      li.append(btn);
      results.append(li);
    }
  }

  close() {
    this.panel.hidden = true;
    this.app.composer.focus();
  }
}

function highlight(parent, text, terms) {
  if (!terms.length) {
    parent.append(text);
    return;
  }
  const escaped = terms.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const re = new RegExp(`(${escaped.join("|")})`, "gi");
  let last = 0;
  for (const m of text.matchAll(re)) {
    parent.append(text.slice(last, m.index), el("mark", null, m[0]));
    last = m.index + m[0].length;
  }
  parent.append(text.slice(last));
}
