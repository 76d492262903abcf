// Drives a real socket.io-client for a test: each stdin line is {"emit": event, "data": ...}; the
// server's ack and every event the server sends are printed as JSON lines. SOCKET_AUTH (JSON) is the
// handshake's `auth` option, e.g. {"apiKey": ...} or {"token": ...}.
import readline from 'node:readline';
import { io } from 'socket.io-client';

const auth = JSON.parse(process.env.SOCKET_AUTH || '{}');
const socket = io(process.env.SERVER_URL, { transports: ['websocket'], auth });
const report = (kind, payload) => console.log(JSON.stringify({ kind, payload }));
socket.on('connect', () => report('connect', socket.id));
socket.on('connect_error', (error) => report('connect_error', { message: String(error), data: error.data ?? null }));
socket.on('disconnect', (reason) => report('disconnect', reason));
socket.onAny((event, payload) => report(event, payload));
readline.createInterface({ input: process.stdin })
  .on('line', (line) => {
    const { emit, data } = JSON.parse(line);
    socket.emit(emit, data, (ack) => report('ack', { event: emit, ack }));
  })
  .on('close', () => { socket.close(); process.exit(0); });
