// An SSE reader written for ElizaOS's sessions API, as an ElizaOS app would write it: POST a message with
// `transport: 'sse'`, then handle `user_message`, `chunk` ({messageId, chunk, index}), `done` ({text, thought,
// actions}) and `error` ({error}). Nothing in it knows about this server. Prints what it saw as one JSON line.
// Usage: node elizaos-sse-reader.mjs <baseUrl> <sessionId> <content>
const [baseUrl, sessionId, content] = process.argv.slice(2);

const seen = { order: [], userMessage: null, text: '', indexes: [], done: null, error: null };
const handlers = {
  user_message: (message) => { seen.userMessage = message; },
  chunk: ({ chunk, index }) => { seen.text += chunk; seen.indexes.push(index); },
  done: (response) => { seen.done = response; },
  error: ({ error }) => { seen.error = error; },
};

const response = await fetch(`${baseUrl}/api/messaging/sessions/${sessionId}/messages`, {
  method: 'POST',
  headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify({ content, transport: 'sse' }),
});
seen.status = response.status;
seen.contentType = response.headers.get('content-type');

const decoder = new TextDecoder();
let buffer = '';
for await (const bytes of response.body) {
  buffer += decoder.decode(bytes, { stream: true });
  let end;
  while ((end = buffer.indexOf('\n\n')) >= 0) {
    const frame = buffer.slice(0, end);
    buffer = buffer.slice(end + 2);
    let event = 'message';
    let data = '';
    for (const line of frame.split('\n')) {
      if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('data: ')) data += line.slice(6);
    }
    if (!data || !handlers[event]) continue;
    seen.order.push(event);
    handlers[event](JSON.parse(data));
  }
}
console.log(JSON.stringify(seen));
