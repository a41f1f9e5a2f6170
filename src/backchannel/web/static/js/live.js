// The live feed: one WebSocket, resumed from the last event sequence number after any drop.
import { refreshSession, request } from "./api.js";

const MAX_BACKOFF_MS = 4000;

export class Live {
  /**
   * @param {{onEvent: (e: object) => void, onState: (s: string) => void,
   *          onConnected: (first: boolean) => Promise<void>}} handlers
   */
  constructor(handlers) {
    this.handlers = handlers;
    this.seq = null; // last event seq applied; null until the first hello
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.everConnected = false;
  }

  start() {
    this.connect();
    window.addEventListener("online", () => this.retryNow());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.retryNow();
    });
  }

  retryNow() {
    if (this.ws || !this.timer) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.connect();
  }

  async connect() {
    this.handlers.onState(this.everConnected ? "reconnecting" : "connecting");
    if (this.attempt > 0) {
      // The socket failed: if it was the session (server restarted), take the new one first.
      try {
        await request("GET", "/api/health");
        const probe = await fetch("/api/channels", { credentials: "same-origin" });
        if (probe.status === 401 && !(await refreshSession())) {
          // Network mode after a restart: only the login page can give us a new session.
          this.handlers.onState("signed-out");
          return this.scheduleRetry();
        }
      } catch {
        return this.scheduleRetry();
      }
    }
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const since = this.seq == null ? "" : `?since=${this.seq}`;
    const ws = new WebSocket(`${proto}//${location.host}/ws${since}`);
    this.ws = ws;
    let opened = false;
    ws.onmessage = (ev) => {
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (frame.kind === "hello") {
        opened = true;
        this.onHello(frame);
        return;
      }
      if (typeof frame.seq === "number") {
        if (this.seq != null && frame.seq <= this.seq) return; // already applied
        this.seq = frame.seq;
      }
      this.handlers.onEvent(frame);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (!opened) this.attempt += 1;
      else this.attempt = 1;
      this.handlers.onState("reconnecting");
      this.scheduleRetry();
    };
    ws.onerror = () => ws.close();
  }

  async onHello(frame) {
    const first = !this.everConnected;
    this.everConnected = true;
    this.attempt = 0;
    // A server whose log is behind ours was reset (new data dir): start over from its state.
    const rewound = this.seq != null && frame.seq < this.seq;
    if (this.seq == null || rewound) this.seq = frame.seq;
    this.handlers.onState("live");
    await this.handlers.onConnected(first || rewound);
  }

  scheduleRetry() {
    const delay = Math.min(MAX_BACKOFF_MS, 150 * 2 ** Math.min(this.attempt, 5)) * (0.75 + Math.random() / 2);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.connect();
    }, delay);
  }
}
