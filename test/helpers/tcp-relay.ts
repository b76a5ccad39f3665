/**
 * A TCP relay on 127.0.0.1 for tests that need to cut one group of clients off a server while
 * others stay: it passes bytes both ways while `open`; closed, it drops new connections at once
 * (open ones are left as they are). A connection whose other side closes is closed.
 */
import net from 'node:net';

/**
 * A TCP relay in front of the broker for the gateways: it passes bytes both ways while open;
 * closed, it drops new connections at once. A connection whose other side closes is closed.
 */
export async function relay(
  target: () => number,
): Promise<{ port: number; open: boolean; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const state = { port: 0, open: true, close: async () => {} };
  const server = net.createServer((down) => {
    sockets.add(down);
    down.on('close', () => sockets.delete(down));
    if (!state.open) {
      down.destroy();
      return;
    }
    const up = net.connect({ host: '127.0.0.1', port: target() });
    sockets.add(up);
    up.on('close', () => sockets.delete(up));
    const end = () => {
      down.destroy();
      up.destroy();
    };
    for (const s of [down, up]) {
      s.on('error', end);
      s.on('close', end);
    }
    down.pipe(up);
    up.pipe(down);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.port = (server.address() as net.AddressInfo).port;
  state.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return state;
}
