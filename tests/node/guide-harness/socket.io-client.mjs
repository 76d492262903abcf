// Stands in for 'socket.io-client' beside the guide's snippet: it is the real npm client (installed in
// tests/node), with the snippet's hard-coded origin pointed at the server under test.
import { createRequire } from 'node:module';

const real = createRequire(process.env.SOCKET_IO_CLIENT_FROM)('socket.io-client');
const GUIDE_ORIGIN = 'http://localhost:3000';

export function io(uri, options) {
  const target = typeof uri === 'string' && uri.startsWith(GUIDE_ORIGIN)
    ? process.env.SERVER_URL + uri.slice(GUIDE_ORIGIN.length) : uri;
  return real.io(target, options);
}

export default io;
