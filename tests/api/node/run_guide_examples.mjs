// Runs the API guide's JavaScript examples, exactly as the guide prints them, against a live server.
// The snippets are read from the guide's text at run time (the guide is not copied into this repo).
// Usage: node run_guide_examples.mjs <guide.txt> <baseUrl> <agentId>
import { readFileSync } from 'node:fs';

const [guidePath, baseUrl, agentId] = process.argv.slice(2);
const guide = readFileSync(guidePath, 'utf8');

// Browsers resolve '/api/...' against the page and the guide's absolute URLs name localhost:3000:
// point both at the server under test, the way a page served by it would.
const realFetch = globalThis.fetch;
globalThis.fetch = (url, init) =>
  realFetch(new URL(String(url).replace(/^http:\/\/localhost:3000/, ''), baseUrl), init);

function snippet(startMarker, endMarker) {
  const start = guide.indexOf(startMarker);
  const end = guide.indexOf(endMarker, start + startMarker.length);
  if (start < 0 || end < 0) throw new Error(`guide section not found: ${startMarker}`);
  return guide.slice(start + startMarker.length, end).trim();
}

// The guide's placeholders stand for values the reader supplies.
const fillPlaceholders = (code) =>
  code.replaceAll("'your-agent-id'", JSON.stringify(agentId))
      .replaceAll("'your-user-id'", JSON.stringify(`guide-user-${Date.now()}`));

const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor;

async function run(code, scope = {}, returns = '') {
  const logs = [];
  const errors = [];
  const fakeConsole = { log: (...a) => logs.push(a), error: (...a) => errors.push(a) };
  const names = Object.keys(scope);
  const body = `${fillPlaceholders(code)}\n;return { ${returns} };`;
  const fn = new AsyncFunction('console', ...names, body);
  const value = await fn(fakeConsole, ...names.map((n) => scope[n]));
  return { value, logs, errors };
}

const results = {};
const userId = `guide-user-${Date.now()}`;

// Quick start: the two helper functions, then used as a reader would use them.
const quick = await run(snippet('Complete Example: Chat Application', '1. Create a Session'), {},
  'startChat, sendMessage');
const quickSession = await quick.value.startChat(agentId, userId);
const quickReply = await quick.value.sendMessage(quickSession, 'Hello there');
results.quickStart = { sessionId: quickSession, reply: quickReply };

const created = await run(snippet('1. Create a Session', '2. Send Messages'), {}, 'sessionId');
const sessionId = created.value.sessionId;
results.create = { sessionId };

const sent = await run(snippet('2. Send Messages', '3. Retrieve Message History'), { sessionId }, 'agentResponse');
results.send = { agentResponse: sent.value.agentResponse, logs: sent.logs };

const listed = await run(snippet('3. Retrieve Message History', '4. End a Session'), { sessionId },
  'messages, hasMore');
results.history = listed.value;

const pagination = snippet('Retrieve messages with pagination:', 'Health Monitoring');
const [beforePart, afterPart] = pagination.split('// Get messages after a specific timestamp');
for (const [name, part] of [['before', beforePart], ['after', '// Get messages after a specific timestamp' + afterPart]]) {
  const page = await run(part, { sessionId }, 'response');
  results[`page_${name}`] = { status: page.value.response.status, body: await page.value.response.json() };
}

const health = await run(snippet('Check the sessions API health:', 'When to Use Sessions vs'), {},
  'status, activeSessions');
results.health = health.value;

const debug = await run(snippet('Enable debug logging:', 'API Reference'), { agentId, userId }, 'response');
results.debug = { status: debug.value.response.status, body: await debug.value.response.json() };

await run(snippet('4. End a Session', 'Advanced Features'), { sessionId });
results.ended = await (await realFetch(`${baseUrl}/api/messaging/sessions/${sessionId}`)).json();

// Error handling: an unknown session takes the 404 branch, an ended one logs the error's message.
const errorHandling = snippet('2. Error Handling', '3. State Persistence');
let recreated = 0;
const createNewSession = async () => { recreated += 1; };
await run(errorHandling, { sessionId: '00000000-0000-4000-8000-000000000000', message: 'hi', createNewSession });
const afterEnd = await run(errorHandling, { sessionId, message: 'hi', createNewSession });
results.errorHandling = { recreated, loggedErrors: afterEnd.errors };

console.log(JSON.stringify(results));
