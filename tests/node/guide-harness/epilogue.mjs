// Harness, not from the guide: report what else arrives (one JSON line each); stop when stdin closes.
const report = (kind, payload) => console.log(JSON.stringify({ kind, payload }));
socket.on('connect_error', (error) => report('connect_error', String(error)));
socket.on('error', (error) => report('error', error));
socket.on('room_joined', (info) => report('joined', info));
socket.on('messageStreamChunk', (chunk) => report('chunk', chunk));
process.stdin.on('end', () => { socket.close(); process.exit(0); });
process.stdin.resume();
