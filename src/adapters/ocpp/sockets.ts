/**
 * The central system's sockets before ocpp-rpc owns them and while it lets them go: the
 * check of an upgrade URL before ocpp-rpc decodes it (ocpp-rpc's decodeURIComponent throws
 * on a malformed percent-encoding, outside any handler), a plain HTTP refusal written on
 * the raw socket, the deadline a connection has to send its handshake, the set of sockets
 * that close() ends when chargers do not finish the closing handshake in time, and the
 * listener and HTTP(S) server of its own port that count them (new connections let in a few
 * a turn, accept-pacer.ts).
 */

import http from 'node:http';
import https from 'node:https';
import net, { type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { AcceptPacer } from './accept-pacer';

/** OCPP-J: a message's unique id is at most 36 characters. */
export const MAX_MESSAGE_ID_LENGTH = 36;

/**
 * The charger identity in an upgrade URL, decoded as ocpp-rpc will decode it (the last path
 * segment), or the reason it cannot be, with the raw segment (shortened) to report.
 */
export function identityFromUrl(
  url: string | undefined,
): { identity: string } | { error: string; raw: string } {
  let last = '';
  try {
    const pathname = new URL(`http://localhost${url || '/'}`).pathname;
    last = pathname.split('/').pop() ?? '';
    return { identity: decodeURIComponent(last) };
  } catch {
    return {
      error: 'malformed percent-encoding in the charger identity of the URL',
      raw: (last || String(url)).slice(0, 64),
    };
  }
}

/** Answers an upgrade request with a plain HTTP status and message, then ends the socket. */
export function refuseUpgrade(socket: Duplex, status: number, message: string): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = `${message}\n`;
  const head = [
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}`,
    'Connection: close',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
  ].join('\r\n');
  socket.end(`${head}\r\n\r\n${body}`, () => socket.destroy());
}

/**
 * The sockets that one central system serves. Each may carry a deadline: a connection that
 * has not sent a complete upgrade request when it runs out is destroyed.
 */
export class SocketSet {
  private readonly open = new Set<Duplex>();
  private readonly deadlines = new Map<Duplex, NodeJS.Timeout>();

  /** Sockets open now. */
  get size(): number {
    return this.open.size;
  }

  add(socket: Duplex): void {
    if (this.open.has(socket)) return;
    this.open.add(socket);
    // Nothing a socket does may throw out of an event: an error just ends it.
    socket.on('error', () => socket.destroy());
    socket.once('close', () => {
      this.open.delete(socket);
      this.clearDeadline(socket);
    });
  }

  /** Destroys the socket unless `clearDeadline` is called within `ms`. */
  deadline(socket: Duplex, ms: number): void {
    this.add(socket);
    if (socket.destroyed || !(ms > 0 && ms < 2 ** 31)) return;
    this.clearDeadline(socket);
    const timer = setTimeout(() => socket.destroy(), ms);
    timer.unref?.();
    this.deadlines.set(socket, timer);
  }

  clearDeadline(socket: Duplex): void {
    const timer = this.deadlines.get(socket);
    if (timer) clearTimeout(timer);
    this.deadlines.delete(socket);
  }

  destroyAll(): void {
    for (const s of this.open) s.destroy();
  }
}

/**
 * The central system's own port: a listener that accepts connections paused and lets them in
 * a few a turn (`accepts`, accept-pacer.ts) to an HTTP(S) server (with `tls`: https)
 * that never listens itself. A plain request gets 426 (connect with a WebSocket); every
 * connection counts in `sockets` from its accept (close() ends them, waiting ones too), and
 * one that has not sent a complete upgrade request within `handshakeMs` of being let in is
 * cut; upgrade requests go to `onUpgrade`. Returns the listener.
 */
export function ownServer(
  tls: { cert: string | Buffer; key: string | Buffer; ca?: string | Buffer } | undefined,
  handshakeMs: number,
  accepts: AcceptPacer,
  sockets: SocketSet,
  onUpgrade: (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void,
): net.Server {
  const server = httpServer(tls, handshakeMs, sockets, onUpgrade);
  const listener = net.createServer({
    pauseOnConnect: true,
    allowHalfOpen: !tls,
    noDelay: true,
  });
  listener.on('connection', (socket: Socket) => {
    sockets.add(socket);
    accepts.add(socket, () => {
      server.emit('connection', socket);
      socket.resume();
    });
  });
  return listener;
}

/** The HTTP(S) server that the connections of `ownServer` are let in to. */
function httpServer(
  tls: { cert: string | Buffer; key: string | Buffer; ca?: string | Buffer } | undefined,
  handshakeMs: number,
  sockets: SocketSet,
  onUpgrade: (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void,
): http.Server | https.Server {
  const onRequest = (_req: http.IncomingMessage, res: http.ServerResponse) => {
    res.statusCode = 426;
    res.setHeader('Upgrade', 'websocket');
    res.setHeader('Connection', 'close');
    res.end('OCPP-J central system: connect with a WebSocket to <path>/<identity>\n');
  };
  const server = tls
    ? https.createServer(
        {
          cert: tls.cert,
          key: tls.key,
          ...(tls.ca ? { ca: tls.ca } : {}),
          handshakeTimeout: handshakeMs,
        },
        onRequest,
      )
    : http.createServer(onRequest);
  server.on('connection', (socket: Duplex) => sockets.add(socket));
  server.on(tls ? 'secureConnection' : 'connection', (socket: Duplex) =>
    sockets.deadline(socket, handshakeMs),
  );
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    sockets.clearDeadline(socket);
    onUpgrade(req, socket, head);
  });
  return server;
}

/** Resolves true when `p` settles within `ms`, false when the time ran out first. */
export function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const out = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  return Promise.race([
    p.then(
      () => true,
      () => true,
    ),
    out,
  ]).finally(() => clearTimeout(timer));
}
