// The chat page: plain ES modules, no build step. Talks to the same API any client uses.
const SESSIONS = '/api/messaging/sessions';
const $ = (id) => document.getElementById(id);

const settings = {
  apiKey: localStorage.getItem('as.apiKey') || '',
  token: localStorage.getItem('as.token') || '',
  userId: localStorage.getItem('as.userId') || `web-${Math.random().toString(36).slice(2, 10)}`,
};
localStorage.setItem('as.userId', settings.userId);

const view = { sessionId: null, olderCursor: null, hasOlder: false, loadingOlder: false, rendered: new Map(),
               events: null, session: null };

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || body?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code || 'HTTP_ERROR';
  }
}

function headers(extra = {}) {
  const result = { 'Content-Type': 'application/json', ...extra };
  if (settings.apiKey) result['X-API-KEY'] = settings.apiKey;
  if (settings.token) result.Authorization = `Bearer ${settings.token}`;
  return result;
}

async function api(path, { method = 'GET', body, extraHeaders } = {}) {
  const response = await fetch(path, { method, headers: headers(extraHeaders), body: body && JSON.stringify(body) });
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// Server-sent events over fetch, so requests can carry auth headers (EventSource cannot): {event, data}.
async function* readEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, '');
      let data = '';
      let event = 'message';
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith('data:')) data += (data ? '\n' : '') + line.slice(5).replace(/^ /, '');
        if (line.startsWith('event:')) event = line.slice(6).trim();
      }
      if (data) yield { event, data: JSON.parse(data) };
    }
  }
}

function showError(error, offerNewSession = false) {
  const box = $('error');
  box.textContent = `${error.message}${error.code ? ` (${error.code})` : ''}`;
  if (offerNewSession) {
    const button = document.createElement('button');
    button.textContent = 'Start a new session';
    button.addEventListener('click', () => newSession().catch(showError));
    box.append(button);
  }
  box.hidden = false;
}

function clearError() { $('error').hidden = true; $('error').textContent = ''; }

function handleError(error) {
  const closed = ['SESSION_EXPIRED', 'SESSION_ENDED', 'SESSION_NOT_FOUND'].includes(error.code);
  showError(error, closed);
  if (closed) refreshSession().catch(() => {});
}

// ----- messages -----
function bubble(message) {
  let element = view.rendered.get(message.id);
  if (!element) {
    element = document.createElement('div');
    element.dataset.testid = 'message';
    view.rendered.set(message.id, element);
  }
  element.dataset.seq = message.seq ?? '';
  const role = message.role || (message.isAgent ? 'agent' : 'user');
  element.className = `message ${role}${message.status === 'failed' ? ' failed' : ''}`;
  element.textContent = message.content;
  if (message.metadata?.thought) {
    const thought = document.createElement('span');
    thought.className = 'thought';
    thought.textContent = message.metadata.thought;
    element.append(thought);
  }
  return element;
}

function placeInOrder(element) {
  const list = $('messages');
  const seq = Number(element.dataset.seq);
  const after = [...list.children].find((child) => Number(child.dataset.seq) > seq);
  if (element.parentElement !== list || element.nextSibling !== after) list.insertBefore(element, after || null);
}

function render(message) {
  const stick = isAtBottom();
  placeInOrder(bubble(message));
  if (stick) scrollToBottom();
}

function isAtBottom() {
  const list = $('messages');
  return list.scrollHeight - list.scrollTop - list.clientHeight < 40;
}
function scrollToBottom() { const list = $('messages'); list.scrollTop = list.scrollHeight; }

async function loadOlder() {
  if (!view.hasOlder || view.loadingOlder || !view.sessionId) return;
  view.loadingOlder = true;
  const list = $('messages');
  const fromBottom = list.scrollHeight - list.scrollTop;
  try {
    const page = await api(`${SESSIONS}/${view.sessionId}/messages?limit=20&before=${encodeURIComponent(view.olderCursor)}`);
    page.messages.forEach(render);
    view.olderCursor = page.cursors.before;
    view.hasOlder = page.hasMore;
    list.scrollTop = list.scrollHeight - fromBottom;  // keep what the reader was looking at in place
  } finally {
    view.loadingOlder = false;
  }
}

// ----- the session panel -----
function showSession(session) {
  view.session = session;
  const state = session.state || {};
  $('state-status').textContent = session.status;
  $('state-count').textContent = session.messageCount;
  $('state-stage').textContent = state.stage ?? '–';
  $('state-intent').textContent = state.intent ?? '–';
  $('state-sentiment').textContent = state.sentiment ? `${state.sentiment.label} (${state.sentiment.score})` : '–';
  $('state-engagement').textContent = state.engagement ? state.engagement.level : '–';
  $('state-confidence').textContent = state.agentConfidence ?? '–';
  $('state-topics').textContent = (state.topics || []).slice(0, 8).map((t) => `${t.topic} ×${t.count}`).join(', ') || '–';
  const preferences = state.preferences || {};
  $('state-preferences').textContent = Object.entries(preferences).map(([k, v]) => `${k}: ${v}`).join('; ') || '–';
  const live = ['active', 'paused'].includes(session.status);
  $('pause').disabled = session.status !== 'active';
  $('resume').disabled = session.status !== 'paused';
  $('end').disabled = !live;
  $('send').disabled = session.status !== 'active';
  tick();
}

function showState(state) { if (view.session) showSession({ ...view.session, state }); }

function tick() {
  const session = view.session;
  if (!session) return;
  const live = ['active', 'paused'].includes(session.status);
  const remaining = live ? Math.max(0, Date.parse(session.expiresAt) - Date.now()) : 0;
  const minutes = Math.floor(remaining / 60000);
  const seconds = Math.floor((remaining % 60000) / 1000);
  $('state-remaining').textContent = live ? `${minutes}:${String(seconds).padStart(2, '0')}` : '–';
}
setInterval(tick, 1000);

async function refreshSession() {
  if (view.sessionId) showSession(await api(`${SESSIONS}/${view.sessionId}`));
}

// ----- live events of the open session -----
function onEvent(envelope) {
  const { type, data } = envelope;
  if (type === 'message.created' || type === 'message.completed') render(data.message);
  if (type === 'message.completed' && data.sessionStatus) showState(data.sessionStatus.state);
  if (type === 'state.updated') showState(data.state);
  if (data?.session) showSession(data.session);
  if (type === 'session.expiring') showError({ message: 'This session expires soon: send a message to keep it.', code: 'SESSION_EXPIRING' });
  if (type === 'session.expired') handleError({ message: 'This session expired.', code: 'SESSION_EXPIRED' });
}

async function followEvents(sessionId) {
  view.events?.abort();
  const controller = new AbortController();
  view.events = controller;
  try {
    const response = await fetch(`${SESSIONS}/${sessionId}/events`, { headers: headers({ Accept: 'text/event-stream' }),
                                                                     signal: controller.signal });
    if (!response.ok || !response.headers.get('content-type')?.includes('text/event-stream')) return;
    for await (const { data: envelope } of readEvents(response)) onEvent(envelope);
  } catch (error) {
    if (error.name !== 'AbortError') console.warn('event stream closed', error);
  }
}

// ----- sessions -----
async function loadSessions() {
  const page = await api(`${SESSIONS}?userId=${encodeURIComponent(settings.userId)}&limit=50`);
  const list = $('session-list');
  list.replaceChildren(...page.sessions.map((session) => {
    const item = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    button.setAttribute('aria-current', String(session.sessionId === view.sessionId));
    button.innerHTML = `<span></span><small></small>`;
    button.firstChild.textContent = new Date(session.createdAt).toLocaleString();
    button.lastChild.textContent = `${session.status} · ${session.messageCount} messages`;
    button.addEventListener('click', () => openSession(session.sessionId).catch(handleError));
    item.append(button);
    return item;
  }));
}

async function openSession(sessionId) {
  clearError();
  view.sessionId = sessionId;
  view.rendered = new Map();
  $('messages').replaceChildren();
  localStorage.setItem('as.sessionId', sessionId);
  const [session, page] = await Promise.all([api(`${SESSIONS}/${sessionId}`), api(`${SESSIONS}/${sessionId}/messages?limit=20`)]);
  showSession(session);
  page.messages.forEach(render);
  view.olderCursor = page.cursors.before;
  view.hasOlder = page.hasMore;
  scrollToBottom();
  await loadSessions();
  followEvents(sessionId);
}

async function newSession() {
  const agentId = $('agent-select').value;
  const session = await api(SESSIONS, { method: 'POST', body: { agentId, userId: settings.userId, metadata: { platform: 'web' } } });
  await openSession(session.sessionId);
}

// ----- sending, with the reply streamed as it is written -----
async function send(content) {
  const response = await fetch(`${SESSIONS}/${view.sessionId}/messages`, {
    method: 'POST',
    headers: headers({ Accept: 'text/event-stream, application/json', 'Idempotency-Key': crypto.randomUUID() }),
    body: JSON.stringify({ content, transport: 'sse' }),
  });
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
  if (!response.headers.get('content-type')?.includes('text/event-stream')) {
    const reply = await response.json();  // a server without streaming answers the whole reply
    if (reply.userMessage) render(reply.userMessage);
    if (reply.content !== undefined) render(reply);
    if (reply.sessionStatus) showState(reply.sessionStatus.state);
    return;
  }
  // The reply speaks ElizaOS's SSE vocabulary: user_message, chunk..., then done or error.
  let draft = null;
  for await (const { event, data } of readEvents(response)) {
    if (event === 'user_message') {
      render(data);
    } else if (event === 'chunk') {
      if (data.index === 0 || !draft) draft = { id: data.messageId, seq: Number.MAX_SAFE_INTEGER, role: 'agent', content: '' };
      draft.content += data.chunk;
      render(draft);
      view.rendered.get(draft.id).classList.add('streaming');  // until `done` brings the stored reply
    } else if (event === 'done') {
      render(data.message);
      showState(data.sessionStatus.state);
    } else if (event === 'error') {
      throw new ApiError(502, { error: data });
    }
  }
}

// ----- wiring -----
async function loadAgents() {
  const { agents } = await api('/api/agents');
  const select = $('agent-select');
  select.replaceChildren(...agents.map((agent) => new Option(`${agent.name} (${agent.provider})`, agent.id)));
}

$('composer').addEventListener('submit', async (event) => {
  event.preventDefault();
  const content = $('content').value.trim();
  if (!content) return;
  clearError();
  $('send').disabled = true;
  try {
    if (!view.sessionId) await newSession();
    $('content').value = '';
    await send(content);
    await Promise.all([refreshSession(), loadSessions()]);
  } catch (error) {
    handleError(error);
  } finally {
    $('send').disabled = view.session?.status !== 'active';
    $('content').focus();
  }
});
$('content').addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey) { event.preventDefault(); $('composer').requestSubmit(); }
});
$('messages').addEventListener('scroll', () => { if ($('messages').scrollTop < 60) loadOlder().catch(handleError); });
$('new-session').addEventListener('click', () => newSession().catch(handleError));
for (const action of ['pause', 'resume']) {
  $(action).addEventListener('click', () => api(`${SESSIONS}/${view.sessionId}/${action}`, { method: 'POST' })
    .then(showSession).then(loadSessions).catch(handleError));
}
$('end').addEventListener('click', () => api(`${SESSIONS}/${view.sessionId}`, { method: 'DELETE' })
  .then(refreshSession).then(loadSessions).catch(handleError));
$('agent-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  try {
    const agent = await api('/api/agents', { method: 'POST', body: { name: $('agent-name').value, provider: $('agent-provider').value } });
    await loadAgents();
    $('agent-select').value = agent.id;
    $('agent-name').value = '';
  } catch (error) { handleError(error); }
});
$('settings-toggle').addEventListener('click', () => {
  const form = $('settings');
  form.hidden = !form.hidden;
  $('settings-toggle').setAttribute('aria-expanded', String(!form.hidden));
});
$('settings').addEventListener('submit', (event) => {
  event.preventDefault();
  Object.assign(settings, { apiKey: $('api-key').value, token: $('user-token').value, userId: $('user-id').value });
  for (const [key, value] of Object.entries(settings)) localStorage.setItem(`as.${key}`, value);
  start();
});
$('api-key').value = settings.apiKey;
$('user-token').value = settings.token;
$('user-id').value = settings.userId;

async function start() {
  clearError();
  try {
    await loadAgents();
    await loadSessions();
    const last = localStorage.getItem('as.sessionId');
    if (last) await openSession(last).catch(() => localStorage.removeItem('as.sessionId'));
  } catch (error) {
    handleError(error);
  }
}
start();
