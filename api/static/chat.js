// The web chat page: plain JavaScript over the public HTTP API (no build step).
// Replies stream as server-sent events when the server answers `transport: "sse"` with an event stream,
// otherwise the blocking reply is shown whole.
"use strict";

const SESSIONS = "/api/messaging/sessions";
const PAGE_SIZE = 20;
const $ = (id) => document.getElementById(id);

const page = {
  sessionId: null,
  session: null,
  olderCursor: null,
  hasOlder: false,
  loadingOlder: false,
  sending: false,
  deadline: null, // when the session expires, in local milliseconds
};

class ApiError extends Error {
  constructor(status, body) {
    super((body && ((body.error && body.error.message) || body.message)) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error ? body.error.code : undefined;
  }
}

// --- settings kept in the browser ---------------------------------------------------------------
function setting(name, fallback) {
  return localStorage.getItem(`agent-sessions.${name}`) || fallback;
}

function keep(name, value) {
  localStorage.setItem(`agent-sessions.${name}`, value);
}

function headers(extra) {
  const result = { "Content-Type": "application/json", ...extra };
  const apiKey = $("api-key").value.trim();
  const token = $("token").value.trim();
  if (apiKey) result["X-API-KEY"] = apiKey;
  if (token) result.Authorization = `Bearer ${token}`;
  return result;
}

async function api(method, path, body) {
  const response = await fetch(path, { method, headers: headers(), body: body ? JSON.stringify(body) : undefined });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// --- errors ------------------------------------------------------------------------------------
function showError(error) {
  const closed = error.code === "SESSION_EXPIRED" || error.code === "SESSION_ENDED";
  $("error-text").textContent = closed
    ? `${error.message} You can start a new session with the same agent.`
    : error.message || String(error);
  $("error-action").hidden = !closed;
  $("error").hidden = false;
  if (closed) refreshSession();
}

function clearError() {
  $("error").hidden = true;
}

// --- agents and sessions -----------------------------------------------------------------------
async function loadAgents(selectId) {
  const { agents } = await api("GET", "/api/agents");
  const select = $("agent");
  select.replaceChildren(...agents.map((agent) => new Option(`${agent.name} (${agent.provider})`, agent.id)));
  select.value = selectId || setting("agent", agents.length ? agents[0].id : "");
  if (!select.value && agents.length) select.value = agents[0].id;
}

async function loadSessions() {
  const userId = $("user-id").value.trim();
  const { sessions } = await api("GET", `${SESSIONS}?userId=${encodeURIComponent(userId)}&limit=50`);
  $("sessions").replaceChildren(...sessions.map((session) => {
    const item = document.createElement("li");
    item.dataset.id = session.sessionId;
    item.className = session.sessionId === page.sessionId ? "current" : "";
    const when = new Date(session.createdAt).toLocaleString();
    item.innerHTML = `${when}<br><span class="status"></span>`;
    item.querySelector(".status").textContent = `${session.status} · ${session.messageCount} msgs`;
    item.addEventListener("click", () => openSession(session.sessionId));
    return item;
  }));
}

async function newSession() {
  clearError();
  const userId = $("user-id").value.trim();
  const session = await api("POST", SESSIONS, { agentId: $("agent").value, userId, metadata: { platform: "web" } });
  await openSession(session.sessionId);
  await loadSessions();
}

async function openSession(sessionId) {
  clearError();
  page.sessionId = sessionId;
  keep("session", sessionId);
  history.replaceState(null, "", `#session=${sessionId}`);
  $("messages").replaceChildren();
  page.olderCursor = null;
  page.hasOlder = false;
  await refreshSession();
  await loadOlder();
  scrollToBottom();
  for (const item of $("sessions").children) item.classList.toggle("current", item.dataset.id === sessionId);
}

async function refreshSession() {
  if (!page.sessionId) return;
  try {
    showSession(await api("GET", `${SESSIONS}/${page.sessionId}`));
  } catch (error) {
    if (error.status === 404) {
      page.sessionId = null;
      localStorage.removeItem("agent-sessions.session");
    }
    showError(error);
  }
}

// --- the side panel ----------------------------------------------------------------------------
function showSession(session) {
  page.session = session;
  $("session-id").textContent = session.sessionId;
  $("message-count").textContent = session.messageCount;
  showStatus(session);
  showState(session.state);
}

function showStatus(status) {
  $("session-status").textContent = status.status;
  page.deadline = Date.now() + status.timeRemaining;
  tick();
  const open = status.status === "active" || status.status === "paused";
  $("content").disabled = $("send").disabled = status.status !== "active";
  $("pause").disabled = status.status !== "active";
  $("resume").disabled = status.status !== "paused";
  $("end").disabled = !open;
}

function tick() {
  if (!page.session || page.deadline === null) return;
  const status = $("session-status").textContent;
  if (status !== "active" && status !== "paused") {
    $("time-left").textContent = "—";
    return;
  }
  const seconds = Math.max(0, Math.round((page.deadline - Date.now()) / 1000));
  $("time-left").textContent = `${Math.floor(seconds / 60)} min ${String(seconds % 60).padStart(2, "0")} s`;
}

function showState(state) {
  if (!state) return;
  const sentiment = state.sentiment || {};
  const engagement = state.engagement || {};
  $("state-stage").textContent = state.stage || "—";
  $("state-sentiment").textContent = sentiment.label ? `${sentiment.label} (${Number(sentiment.score).toFixed(2)})` : "—";
  $("state-engagement").textContent = engagement.level ? `${engagement.level} (${Number(engagement.score).toFixed(2)})` : "—";
  $("state-topics").textContent = (state.topics || []).map((t) => (typeof t === "string" ? t : t.topic)).join(", ") || "—";
  $("state-confidence").textContent = state.agentConfidence == null ? "—" : Number(state.agentConfidence).toFixed(2);
}

// --- messages ----------------------------------------------------------------------------------
function bubble(message) {
  const element = document.createElement("div");
  element.className = `message ${message.isAgent || message.role === "agent" ? "agent" : "user"}`;
  if (message.status === "failed") element.classList.add("failed");
  if (message.id) element.dataset.id = message.id;
  const content = document.createElement("span");
  content.className = "content";
  content.textContent = message.content || "";
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = message.createdAt ? new Date(message.createdAt).toLocaleTimeString() : "";
  element.append(content, meta);
  return element;
}

function findBubble(id) {
  return id ? $("messages").querySelector(`[data-id="${CSS.escape(id)}"]`) : null;
}

function putMessage(message) {
  const existing = findBubble(message.id);
  const element = bubble(message);
  if (existing) existing.replaceWith(element);
  else $("messages").append(element);
  return element;
}

async function loadOlder() {
  if (!page.sessionId || page.loadingOlder) return;
  page.loadingOlder = true;
  try {
    const before = page.olderCursor ? `&before=${encodeURIComponent(page.olderCursor)}` : "";
    const result = await api("GET", `${SESSIONS}/${page.sessionId}/messages?limit=${PAGE_SIZE}${before}`);
    const list = $("messages");
    const heightBefore = list.scrollHeight;
    // Newest first from the API: prepend in that order so the oldest ends on top.
    for (const message of result.messages) if (!findBubble(message.id)) list.prepend(bubble(message));
    list.scrollTop += list.scrollHeight - heightBefore; // keep what the reader was looking at in place
    page.olderCursor = result.cursors.before;
    page.hasOlder = result.hasMore;
  } catch (error) {
    showError(error);
  } finally {
    page.loadingOlder = false;
  }
}

function scrollToBottom() {
  $("messages").scrollTop = $("messages").scrollHeight;
}

// --- sending -----------------------------------------------------------------------------------
async function send(text) {
  clearError();
  page.sending = true;
  $("send").disabled = true;
  const pending = $("messages").appendChild(bubble({ role: "user", content: text }));
  scrollToBottom();
  try {
    const response = await fetch(`${SESSIONS}/${page.sessionId}/messages`, {
      method: "POST",
      headers: headers({ Accept: "text/event-stream" }),
      body: JSON.stringify({ content: text, transport: "sse" }),
    });
    const type = response.headers.get("content-type") || "";
    if (!response.ok) {
      pending.remove();
      throw new ApiError(response.status, await response.json().catch(() => ({})));
    }
    if (type.startsWith("text/event-stream")) {
      await readEvents(response, (event) => onEvent(event, pending));
    } else {
      onReply(await response.json(), pending, response.status);
    }
  } catch (error) {
    showError(error);
  } finally {
    page.sending = false;
    $("send").disabled = $("content").disabled;
    loadSessions().catch(() => {});
  }
}

function onReply(body, pending, status) {
  // A server without streaming, or a blocking answer: the stored user message plus the agent's reply.
  pending.replaceWith(bubble(body.userMessage));
  if (status === 202) {
    showError(new Error("The agent is taking a while; the reply will appear in the history."));
    return;
  }
  putMessage(body);
  showStatus(body.sessionStatus);
  showState(body.sessionStatus.state);
  $("message-count").textContent = Number($("message-count").textContent) + 2;
  scrollToBottom();
}

function onEvent(event, pending) {
  const data = event.data || {};
  switch (event.type) {
    case "message.created":
      pending.replaceWith(bubble(data.message));
      break;
    case "message.chunk": {
      let element = findBubble(data.messageId);
      if (!element) {
        element = putMessage({ id: data.messageId, role: "agent", content: "" });
        element.classList.add("streaming");
      }
      element.querySelector(".content").textContent += data.delta;
      break;
    }
    case "message.completed":
      putMessage(data.message);
      if (data.sessionStatus) showStatus(data.sessionStatus);
      $("message-count").textContent = Number($("message-count").textContent) + 2;
      break;
    case "state.updated":
      showState(data.state);
      break;
    case "message.failed":
      putMessage({ id: data.messageId, role: "agent", status: "failed",
                   content: `The agent could not answer: ${(data.error && data.error.message) || "unknown error"}` });
      break;
    case "error":
      showError(new ApiError(502, { error: data }));
      break;
    default:
      break;
  }
  scrollToBottom();
}

async function readEvents(response, handle) {
  // Server-sent events from a POST (EventSource only does GET): split on blank lines, read the fields.
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let type = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) type = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (!data.length) continue;
      let payload;
      try { payload = JSON.parse(data.join("\n")); } catch { continue; }
      const envelope = payload && payload.type && "data" in payload ? payload : { type, data: payload };
      handle({ ...envelope, type });
      if (type === "done") return;
    }
  }
}

// --- lifecycle buttons -------------------------------------------------------------------------
async function lifecycle(action) {
  clearError();
  try {
    if (action === "end") await api("DELETE", `${SESSIONS}/${page.sessionId}`);
    else await api("POST", `${SESSIONS}/${page.sessionId}/${action}`);
    await refreshSession();
    await loadSessions();
  } catch (error) {
    showError(error);
  }
}

// --- wiring ------------------------------------------------------------------------------------
async function start() {
  $("user-id").value = setting("user", `web-${Math.random().toString(36).slice(2, 10)}`);
  $("api-key").value = setting("apiKey", "");
  $("token").value = setting("token", "");
  keep("user", $("user-id").value);
  $("user-id").addEventListener("change", () => { keep("user", $("user-id").value.trim()); loadSessions().catch(showError); });
  $("api-key").addEventListener("change", () => keep("apiKey", $("api-key").value.trim()));
  $("token").addEventListener("change", () => keep("token", $("token").value.trim()));
  $("agent").addEventListener("change", () => keep("agent", $("agent").value));
  $("new-session").addEventListener("click", () => newSession().catch(showError));
  $("error-action").addEventListener("click", () => newSession().catch(showError));
  $("error-close").addEventListener("click", clearError);
  $("pause").addEventListener("click", () => lifecycle("pause"));
  $("resume").addEventListener("click", () => lifecycle("resume"));
  $("end").addEventListener("click", () => lifecycle("end"));
  $("messages").addEventListener("scroll", () => {
    if ($("messages").scrollTop < 40 && page.hasOlder) loadOlder();
  });
  $("agent-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const agent = await api("POST", "/api/agents", { name: $("agent-name").value.trim(), provider: "eliza" });
      $("agent-name").value = "";
      await loadAgents(agent.id);
      keep("agent", agent.id);
    } catch (error) {
      showError(error);
    }
  });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("content").value.trim();
    if (!text || page.sending || !page.sessionId) return;
    $("content").value = "";
    send(text);
  });
  $("content").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  setInterval(tick, 1000);
  setInterval(() => { if (!page.sending) refreshSession(); }, 30000);

  try {
    await loadAgents();
    await loadSessions();
    const fromHash = new URLSearchParams(location.hash.slice(1)).get("session");
    const sessionId = fromHash || setting("session", "");
    if (sessionId) await openSession(sessionId);
  } catch (error) {
    showError(error);
  }
}

start();
