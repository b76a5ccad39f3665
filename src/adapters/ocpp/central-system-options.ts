/**
 * The central system's options: the types a caller fills in (security profile, known
 * chargers, ports, paths, timeouts) and `resolveOptions`, which checks them with an error
 * that names the option and fills in the defaults. central-system.ts uses what it returns.
 */

import type { Clock } from '../../clock';
import { DEFAULT_ACCEPT_SLICE_MS } from './accept-pacer';
import { DEFAULT_SEND_SLICE_MS } from './send-pacer';
import { OCPP_VERSIONS, type OcppVersion } from './translate';

export type SecurityProfile = 'none' | 'basic' | 'tls-basic';

export interface KnownCharger {
  identity: string;
  /** HTTP Basic password (security profiles 1 and 2). */
  password?: string;
}

export interface CentralSystemOptions {
  /** Listen address for `listen()`. Default 127.0.0.1. */
  host?: string;
  /** Port for `listen()`; 0 picks a free one. Default 9220. */
  port?: number;
  /** The path before the identity: chargers connect to `ws://host:port<path>/<identity>`. Default '/ocpp'. */
  path?: string;
  protocols?: OcppVersion[];
  security?: SecurityProfile;
  /** Certificate and key (PEM) for `tls-basic`. */
  tls?: { cert: string | Buffer; key: string | Buffer; ca?: string | Buffer };
  chargers?: KnownCharger[];
  /** Accept identities that are not in `chargers` (never with basic security). Default false. */
  allowUnknown?: boolean;
  /** Heartbeat interval sent in the BootNotification answer, seconds. Default 300. */
  heartbeatIntervalSeconds?: number;
  /** How long a call to a charger waits for its answer, ms. Default 20,000. */
  callTimeoutMs?: number;
  /** Bad messages in a row before a charger's connection is closed. Default 5. */
  maxBadMessages?: number;
  /** Largest WebSocket frame accepted, bytes. Default 65,536. */
  maxPayloadBytes?: number;
  /**
   * On its own port: how long a new connection may take to send its complete upgrade request
   * (and TLS handshake), ms; then it is cut. Default 10,000.
   */
  handshakeTimeoutMs?: number;
  /**
   * How long `close()` waits for chargers to answer the close frame (1001) before it cuts
   * their sockets, ms. Default 2,000.
   */
  closeTimeoutMs?: number;
  /**
   * On its own port: how many connections the kernel may queue before they are accepted (the
   * listen backlog; the kernel caps it at `net.core.somaxconn`). Default 4,096 (Node's own
   * default is 511): after a site's power cut thousands of chargers connect at once, and a
   * connection beyond the queue is dropped and retried seconds later.
   */
  listenBacklog?: number;
  /**
   * How long a turn of the event loop may take while new connections wait, ms
   * (accept-pacer.ts). They are let in a few a turn, fewer while turns take longer than this
   * (on its own port accepted without being read; on a path of another server their
   * WebSocket handshakes wait): a reboot storm of thousands of chargers is taken in over many
   * short turns, not in one that holds the event loop for seconds. Default 20; Infinity:
   * every connection let in as it comes.
   */
  acceptSliceMs?: number;
  /**
   * How long the calls sent to chargers in one turn of the event loop may take before the
   * rest wait for the next turns, ms (send-pacer.ts): a slot start's setpoints to thousands of
   * chargers go out in slices, with the answers read in between. Default 8; 0: one call a
   * turn; Infinity: every call at once, as it comes.
   */
  sendSliceMs?: number;
  /** Authorize / id tags: accept all (default), or reject all. */
  authorize?: 'accept' | 'reject';
  clock?: Clock;
}

/** The options with their defaults, as `CentralSystem.options` holds them. */
export type ResolvedOptions = Required<Omit<CentralSystemOptions, 'tls' | 'chargers' | 'clock'>> & {
  tls?: CentralSystemOptions['tls'];
};

/** The listen backlog of the central system's own port (`listenBacklog`). */
export const DEFAULT_LISTEN_BACKLOG = 4096;

/** Checks the options (a TypeError naming the option) and fills in the defaults. */
export function resolveOptions(options: CentralSystemOptions): ResolvedOptions {
  const path = normalisePath(options.path ?? '/ocpp');
  const protocols = options.protocols ?? [...OCPP_VERSIONS];
  for (const p of protocols) {
    if (!OCPP_VERSIONS.includes(p)) {
      throw new TypeError(
        `central system: unknown OCPP protocol ${JSON.stringify(p)}; use ${OCPP_VERSIONS.join(' or ')}`,
      );
    }
  }
  const security = options.security ?? 'none';
  if (!['none', 'basic', 'tls-basic'].includes(security)) {
    throw new TypeError(
      `central system: security must be none, basic or tls-basic, got ${JSON.stringify(security)}`,
    );
  }
  if (security === 'tls-basic' && (!options.tls?.cert || !options.tls?.key)) {
    throw new TypeError('central system: tls-basic needs a certificate and a key (PEM)');
  }
  for (const key of ['handshakeTimeoutMs', 'closeTimeoutMs'] as const) {
    const v = options[key];
    if (v !== undefined && !(Number.isFinite(v) && v > 0 && v < 2 ** 31)) {
      throw new TypeError(
        `central system: ${key} must be a number of milliseconds above 0, got ${JSON.stringify(v)}`,
      );
    }
  }
  const backlog = options.listenBacklog;
  if (backlog !== undefined && !(Number.isInteger(backlog) && backlog > 0 && backlog < 2 ** 31)) {
    throw new TypeError(
      `central system: listenBacklog must be a whole number above 0, got ${JSON.stringify(backlog)}`,
    );
  }
  for (const key of ['sendSliceMs', 'acceptSliceMs'] as const) {
    const v = options[key];
    if (v !== undefined && !(typeof v === 'number' && v >= 0)) {
      throw new TypeError(
        `central system: ${key} must be a number of milliseconds, 0 or more, got ${JSON.stringify(v)}`,
      );
    }
  }
  return {
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 9220,
    path,
    protocols,
    security,
    allowUnknown: options.allowUnknown ?? false,
    heartbeatIntervalSeconds: options.heartbeatIntervalSeconds ?? 300,
    callTimeoutMs: options.callTimeoutMs ?? 20_000,
    maxBadMessages: options.maxBadMessages ?? 5,
    maxPayloadBytes: options.maxPayloadBytes ?? 65_536,
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? 10_000,
    closeTimeoutMs: options.closeTimeoutMs ?? 2_000,
    listenBacklog: backlog ?? DEFAULT_LISTEN_BACKLOG,
    sendSliceMs: options.sendSliceMs ?? DEFAULT_SEND_SLICE_MS,
    acceptSliceMs: options.acceptSliceMs ?? DEFAULT_ACCEPT_SLICE_MS,
    authorize: options.authorize ?? 'accept',
    ...(options.tls ? { tls: options.tls } : {}),
  };
}

/** `/a//b/` -> `/a/b`; the root stays `/`. */
export function normalisePath(p: string): string {
  const s = `/${p}`.replace(/\/+/g, '/').replace(/\/$/, '');
  return s === '' ? '/' : s;
}
