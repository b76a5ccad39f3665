/**
 * AcceptPacer: how many new connections to the central system may be setting up at once.
 * After a site's power cut thousands of chargers connect at once. libuv reads every
 * ready socket in one poll phase (up to 48 rounds of 1,024 events) before a timer or an
 * immediate runs, so when the upgrade requests and boots of thousands of open connections
 * arrive together, their WebSocket handshakes and boots run back to back: 10,000 chargers at
 * once held the event loop for 5 s (bench/ocpp-10k.bench.ts `10000 burst`,
 * docs/PERFORMANCE.md). Here a connection waits, in order, before anything is done for it:
 * on the central system's own port it is accepted paused (`pauseOnConnect`: nothing is
 * read); on a path of another server (Node-RED's) its upgrade request has been read and its
 * WebSocket handshake waits (the server leaves the socket unread after 'upgrade'). A turn of
 * the event loop (`setImmediate`) lets some in: at most `window` are setting up at a time,
 * from being let in until the central system says they are through (`settled`: the
 * charger's first message, its BootNotification or, after a reconnect, a
 * StatusNotification), they close, or `holdMs` has passed.
 *
 * The window halves after a turn of the event loop longer than `budgetMs` (their handshakes
 * and boots, and whatever else the process did), and grows as connections go through, as
 * TCP's congestion window does: by one for each until the first turn too long, then by one
 * for each window's worth. It grows on what the process has shown it can do, never on turns
 * that were short only because the work of the connections let in had not arrived yet. A
 * connection whose time ran out without a byte read (idle: it cost nothing) counts as gone
 * through, so that a crowd of idle connections cannot hold the door for long; one that ran
 * out mid-handshake does not. While the window is full the pacer looks again every
 * millisecond (a timer: the loop does not spin). A socket that closed while it waited is
 * skipped. Budget Infinity: every connection let in as it comes.
 */

import type { Socket } from 'node:net';

/** A turn of the event loop that the central system's new connections may make this long, ms. */
export const DEFAULT_ACCEPT_SLICE_MS = 20;

/**
 * A connection counts as setting up for at most this long after it is let in, ms (one that
 * has connected and says nothing, or a slow one, does not hold its slot).
 */
export const SETUP_HOLD_MS = 2_000;

/** The window's first size, smallest and largest. */
const FIRST_WINDOW = 8;
const MIN_WINDOW = 2;
const MAX_WINDOW = 512;

/** A connection's endpoints as both its raw socket and a TLS socket over it report them. */
function endpointOf(socket: { remoteAddress?: string; remotePort?: number }): string {
  return `${socket.remoteAddress}|${socket.remotePort}`;
}

/** A connection waiting: its socket, and how it is let in. */
interface Waiting {
  socket: Socket;
  enter: () => void;
}

export class AcceptPacer {
  /** Connections waiting, oldest first, from `head` on. */
  private queue: (Waiting | undefined)[] = [];
  private head = 0;
  /** Connections setting up, in the order they were let in, with when (`now`). */
  private readonly setup = new Map<Socket, number>();
  /** The same, by endpoint (a TLS socket over the raw one reports the same). */
  private readonly byEndpoint = new Map<string, Socket>();
  private size = FIRST_WINDOW;
  /** Slots freed since the last turn; the window grows by them (`doubling`) or by one a round. */
  private freed = 0;
  private doubling = true;
  private credit = 0;
  /** When the last turn ran (`now`), or -1: none since nothing waited. */
  private lastTurn = -1;
  private scheduled = false;

  constructor(
    private readonly budgetMs: number,
    private readonly holdMs: number,
    private readonly now: () => number = () => performance.now(),
    private readonly defer: (fn: () => void) => void = (fn) => setImmediate(fn),
    private readonly wait: (fn: () => void) => void = (fn) => setTimeout(fn, 1),
  ) {}

  /** Connections accepted and not yet let in. */
  get waiting(): number {
    return this.queue.length - this.head;
  }

  /** Connections let in and still setting up. */
  get settingUp(): number {
    return this.setup.size;
  }

  /** How many may be setting up at once now. */
  get window(): number {
    return this.size;
  }

  /**
   * A connection that nothing has been done for yet (accepted paused, or an upgrade request
   * not yet handled): `enter` lets it in in a turn with room in the window.
   */
  add(socket: Socket, enter: () => void): void {
    if (this.budgetMs === Number.POSITIVE_INFINITY) {
      this.enter({ socket, enter });
      return;
    }
    this.queue.push({ socket, enter });
    this.schedule();
  }

  /** The connection over `socket` (raw or TLS) is through its setup: its slot is free. */
  settled(socket: { remoteAddress?: string; remotePort?: number }): void {
    const raw = this.setup.has(socket as Socket)
      ? (socket as Socket)
      : this.byEndpoint.get(endpointOf(socket));
    if (raw) this.release(raw);
  }

  /** Frees `socket`'s slot; one that went through (or sat idle) grows the window. */
  private release(socket: Socket, through = true): void {
    if (!this.setup.delete(socket)) return;
    if (through) this.freed++;
    const key = endpointOf(socket);
    if (this.byEndpoint.get(key) === socket) this.byEndpoint.delete(key);
  }

  private enter(w: Waiting): void {
    try {
      w.enter();
    } catch {
      w.socket.destroy();
    }
  }

  /** Asks for a turn: the next one when the window has room, else in about a millisecond. */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    if (this.setup.size < this.size) this.defer(() => this.turn());
    else this.wait(() => this.turn());
  }

  /** Adjusts the window to the last turn, frees expired slots, lets in what fits. */
  private turn(): void {
    this.scheduled = false;
    const t = this.now();
    if (this.lastTurn >= 0 && t - this.lastTurn > this.budgetMs) {
      this.size = Math.max(MIN_WINDOW, Math.floor(this.size / 2));
      this.doubling = false;
    } else if (this.freed > 0) {
      // Grown by what went through: doubling each round until the first turn too long,
      // then one more a round.
      if (this.doubling) this.size += this.freed;
      else {
        this.credit += this.freed;
        while (this.credit >= this.size) {
          this.credit -= this.size;
          this.size++;
        }
      }
      this.size = Math.min(MAX_WINDOW, this.size);
    }
    this.freed = 0;
    for (const [socket, since] of this.setup) {
      if (t - since < this.holdMs) break;
      this.release(socket, socket.bytesRead === 0);
    }
    while (this.setup.size < this.size && this.head < this.queue.length) {
      const w = this.queue[this.head] as Waiting;
      this.queue[this.head++] = undefined;
      const socket = w.socket;
      if (socket.destroyed) continue;
      this.setup.set(socket, t);
      this.byEndpoint.set(endpointOf(socket), socket);
      socket.once('close', () => this.release(socket));
      this.enter(w);
    }
    if (this.head === this.queue.length) {
      // Nothing waits: the next crowd starts from this window, doubling again.
      this.queue = [];
      this.head = 0;
      this.lastTurn = -1;
      this.doubling = true;
      return;
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.lastTurn = t;
    this.schedule();
  }
}
