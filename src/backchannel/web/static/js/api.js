// HTTP access to the server: session header on writes, and re-authentication after a restart.
//
// The session secret changes every time the server starts. GET / hands a fresh one to a same-origin
// page (in the HTML and as the HttpOnly cookie), so after a restart we re-read it from there
// instead of asking the person to reload.

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

let session = document.querySelector('meta[name="bc-session"]')?.content || "";
let refreshing = null;

/** Fetch GET / again and take the secret from its meta tag (the response also renews the cookie). */
export function refreshSession() {
  refreshing ??= (async () => {
    try {
      const res = await fetch("/", { credentials: "same-origin", cache: "no-store" });
      if (!res.ok) return false;
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      const fresh = doc.querySelector('meta[name="bc-session"]')?.content;
      if (!fresh) return false; // a login page: network mode needs the person to sign in again
      session = fresh;
      return true;
    } catch {
      return false;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

async function send(method, path, { json, body, headers = {} } = {}) {
  const init = { method, credentials: "same-origin", headers: { ...headers } };
  if (method !== "GET") init.headers["X-Backchannel-Session"] = session;
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  return fetch(path, init);
}

export async function request(method, path, options = {}) {
  let res = await send(method, path, options);
  if (res.status === 401 && (await refreshSession())) res = await send(method, path, options);
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, data?.error, data?.detail);
  return data;
}

const enc = encodeURIComponent;

export const api = {
  channels: () => request("GET", "/api/channels"),
  createChannel: (name) => request("POST", "/api/channels", { json: { name } }),
  renameChannel: (name, to) => request("PATCH", `/api/channels/${enc(name)}`, { json: { name: to } }),
  deleteChannel: (name) => request("DELETE", `/api/channels/${enc(name)}`),
  requestSummary: (name, agent) =>
    request("POST", `/api/channels/${enc(name)}/summary-request`, { json: { agent } }),
  resume: (name, sender) =>
    request("POST", `/api/channels/${enc(name)}/continue?sender=${enc(sender)}`),
  history(name, { limit = 50, before, after } = {}) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (before != null) q.set("before", String(before));
    if (after != null) q.set("after", String(after));
    return request("GET", `/api/channels/${enc(name)}/messages?${q}`);
  },
  message: (id) => request("GET", `/api/messages/${id}`),
  post: (channel, payload) => request("POST", `/api/channels/${enc(channel)}/messages`, { json: payload }),
  edit: (id, text) => request("PATCH", `/api/messages/${id}`, { json: { text } }),
  remove: (id) => request("DELETE", `/api/messages/${id}`),
  decide: (id, choice) => request("POST", `/api/messages/${id}/decide`, { json: { choice } }),
  search(q, channel) {
    const params = new URLSearchParams({ q, limit: "50" });
    if (channel) params.set("channel", channel);
    return request("GET", `/api/search?${params}`);
  },
  upload: (file) =>
    request("POST", "/api/uploads", {
      body: file,
      headers: { "Content-Type": file.type || "application/octet-stream", "X-Filename": safeName(file.name) },
    }),
  agents: () => request("GET", "/api/agents"),
  me: () => request("GET", "/api/me"),
  setMe: (name) => request("PUT", "/api/me", { json: { name } }),
  deliveries: (ids) => request("GET", `/api/deliveries?ids=${ids.join(",")}`),
  retry: (trigger) => request("POST", `/api/triggers/${trigger}/retry`),
  updateAgent: (name, patch) => request("PATCH", `/api/agents/${enc(name)}`, { json: patch }),
};

function safeName(name) {
  // Header values must be ISO-8859-1; the server only uses the name as a label.
  return (name || "image").replace(/[^\x20-\x7e]/g, "_").slice(0, 100);
}
