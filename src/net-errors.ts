/**
 * Why a listener, a TCP connection or a serial port could not be opened, as one short text
 * that a node status can show ("port 9220 in use", "127.0.0.1:5020 refused", "/dev/ttyUSB0
 * not found"). The one table from operating-system error codes (EADDRINUSE, ECONNREFUSED,
 * ENOENT, ...) to causes: the OCPP central system's listener and the Modbus connection use
 * it, and the nodes show it. Pure: no I/O.
 */

/** What was being opened: a listener, a TCP connection, a serial port. */
export type NetTarget =
  | { op: 'listen'; host: string; port: number }
  | { op: 'connect'; host: string; port: number }
  | { op: 'open'; path: string };

export type NetProblemCode =
  | 'in-use'
  | 'denied'
  | 'no-address'
  | 'refused'
  | 'unreachable'
  | 'timeout'
  | 'unknown-host'
  | 'not-found'
  | 'busy'
  | 'no-serialport'
  | 'other';

export interface NetProblem {
  op: NetTarget['op'];
  code: NetProblemCode;
  /** The operating system's code (EADDRINUSE, ...) when the error had one. */
  errno?: string;
  /** The values of the text: address (host:port), host, port, path, detail. */
  params: Record<string, string | number>;
  /** Short English text, for a node status: `NET_PROBLEM_TEXTS[op][code]` filled in. */
  text: string;
}

/**
 * The texts, by what was opened and the cause; `__name__` is a value of `params` (the
 * placeholder syntax of Node-RED's message catalogs, which repeat these texts).
 */
export const NET_PROBLEM_TEXTS: {
  readonly [Op in NetTarget['op']]: Readonly<Partial<Record<NetProblemCode, string>>>;
} = {
  listen: {
    'in-use': 'port __port__ in use',
    denied: 'cannot listen on __address__: permission denied',
    'no-address': 'cannot listen on __address__: no such address here',
    'unknown-host': 'cannot listen on __host__: unknown host',
    other: 'cannot listen on __address__: __detail__',
  },
  connect: {
    refused: '__address__ refused',
    unreachable: '__host__ unreachable',
    timeout: '__address__ timed out',
    'unknown-host': '__host__ not found',
    denied: '__address__: permission denied',
    other: '__address__: __detail__',
  },
  open: {
    'not-found': '__path__ not found',
    denied: '__path__: permission denied',
    busy: '__path__ busy',
    'no-serialport': 'serialport not installed',
    other: '__path__: __detail__',
  },
};

const BY_ERRNO: Record<string, NetProblemCode> = {
  EADDRINUSE: 'in-use',
  EACCES: 'denied',
  EPERM: 'denied',
  EADDRNOTAVAIL: 'no-address',
  ECONNREFUSED: 'refused',
  EHOSTUNREACH: 'unreachable',
  ENETUNREACH: 'unreachable',
  EHOSTDOWN: 'unreachable',
  ENETDOWN: 'unreachable',
  ETIMEDOUT: 'timeout',
  ENOTFOUND: 'unknown-host',
  EAI_AGAIN: 'unknown-host',
  EAI_NONAME: 'unknown-host',
  ENOENT: 'not-found',
  ENODEV: 'not-found',
  ENXIO: 'not-found',
  EBUSY: 'busy',
};

/**
 * Errors that carry no code, by their message: serialport says "No such file or directory,
 * cannot open /dev/ttyUSB0", modbus-serial "TCP Connection Timed Out".
 */
const BY_MESSAGE: [RegExp, string][] = [
  [/no such file or directory/i, 'ENOENT'],
  [/permission denied|access denied/i, 'EACCES'],
  [/resource busy|cannot lock port/i, 'EBUSY'],
  [/timed out/i, 'ETIMEDOUT'],
];

const DETAIL_MAX = 40;

/** The cause of `err`, an error of opening `target`, as a short text and its parts. */
export function netProblem(err: unknown, target: NetTarget): NetProblem {
  const e = (err ?? {}) as { code?: unknown; message?: unknown; cause?: { code?: unknown } };
  const message = typeof e.message === 'string' ? e.message : String(err);
  const params: Record<string, string | number> = {};
  if (target.op === 'open') {
    params.path = target.path;
  } else {
    params.host = target.host;
    params.port = target.port;
    params.address = `${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
  }
  if (target.op === 'open' && /cannot find module ['"]serialport['"]/i.test(message)) {
    return fill(target.op, 'no-serialport', undefined, params);
  }
  const errno = errnoOf(e.code) ?? errnoOf(e.cause?.code) ?? errnoIn(message);
  const code = errno ? BY_ERRNO[errno] : undefined;
  if (code && NET_PROBLEM_TEXTS[target.op][code] !== undefined) {
    return fill(target.op, code, errno, params);
  }
  params.detail = errno ?? shorten(message);
  return fill(target.op, 'other', errno, params);
}

function fill(
  op: NetTarget['op'],
  code: NetProblemCode,
  errno: string | undefined,
  params: Record<string, string | number>,
): NetProblem {
  const template = NET_PROBLEM_TEXTS[op][code] as string;
  const text = template.replace(/__(\w+)__/g, (_m, name: string) => String(params[name] ?? ''));
  return { op, code, ...(errno ? { errno } : {}), params, text };
}

function errnoOf(code: unknown): string | undefined {
  return typeof code === 'string' && /^E[A-Z_]+$/.test(code) ? code : undefined;
}

/** An errno named in a message ("connect ECONNREFUSED 127.0.0.1:502"), or one its words mean. */
function errnoIn(message: string): string | undefined {
  const named =
    /\b(E(?:ADDRINUSE|ADDRNOTAVAIL|ACCES|PERM|CONNREFUSED|HOSTUNREACH|NETUNREACH|HOSTDOWN|NETDOWN|TIMEDOUT|NOTFOUND|AI_AGAIN|AI_NONAME|NOENT|NODEV|NXIO|BUSY))\b/.exec(
      message,
    );
  if (named) return named[1];
  return BY_MESSAGE.find(([re]) => re.test(message))?.[1];
}

/** The message without "Error: " prefixes, cut to a status's length. */
function shorten(message: string): string {
  const m = message.replace(/^(?:\w*Error:\s*)+/, '').trim() || 'failed';
  return m.length > DETAIL_MAX ? `${m.slice(0, DETAIL_MAX - 1)}…` : m;
}
