/**
 * The demo's terminal output (scripts/demo.ts): one line per event of each coordinator's
 * EventBus, tagged with its siteId (`-` on lines of no site), the lines of the demo and its
 * devices, and Node-RED's log in the same format. Stops writing once stdout is closed.
 */
import { inspect } from 'node:util';
import type * as Core from '..';

// --- output

const pad = (text: string, width: number) => text.padEnd(width);
const time = (d = new Date()) => {
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
};

/** Set when stdout is closed (`npm start | head`): the demo then stops. */
let stdoutClosed = false;

/** stdout is closed (`npm start | head`): write nothing more. */
export function stopOutput(): void {
  stdoutClosed = true;
}

/** Width of the site column: the longest siteId followed so far, at least 10. */
let siteWidth = 10;
/** The site column of a line that belongs to no site (the demo, its devices, Node-RED). */
const NO_SITE = '-';

/** One line of the demo's output: time, site, kind, subject, then the rest. */
function sayFor(site: string, kind: string, subject: string, text: string): void {
  if (stdoutClosed) return;
  process.stdout.write(
    `${time()}  ${pad(site, siteWidth)}  ${pad(kind, 8)} ${pad(subject, 12)} ${text}\n`,
  );
}

/** A line that belongs to no site. */
export const say = (kind: string, subject: string, text: string) =>
  sayFor(NO_SITE, kind, subject, text);

export const kw = (x: number) => `${Math.round(x * 1000) / 1000} kW`;

/**
 * The line of one bus event, without time and site. Command events read
 * `<time>  <siteId>  command  <asset>  <COMMAND_TYPE>  <value> kW  <STATUS>[  <detail>]`.
 */
export function eventLine(e: Core.AnyBusEvent): [string, string, string] {
  switch (e.type) {
    case 'STATE_CHANGED': {
      const p = e.payload;
      return [
        'state',
        p.assetId,
        `${p.from_state} -> ${p.to_state}${p.reason ? `  (${p.reason})` : ''}`,
      ];
    }
    case 'SCHEDULE_RECEIVED': {
      const p = e.payload;
      return [
        'schedule',
        p.scheduleId,
        `${p.slots} slots of ${p.slotSeconds} s from ${time(new Date(p.start))}, ${p.commandCount} commands for ${p.assets.join(', ')}`,
      ];
    }
    case 'ASSET_DEVIATION': {
      const p = e.payload;
      return ['deviation', p.assetId, p.reason];
    }
    case 'ASSET_COMPLIANT': {
      const p = e.payload;
      return [
        'compliant',
        p.assetId,
        `${kw(p.measuredKw)} for setpoint ${kw(p.setpointKw)} (deviated ${Math.round(p.deviatedForMs / 1000)} s)`,
      ];
    }
    case 'SETPOINT_LIMITED': {
      const p = e.payload;
      return [
        'limited',
        p.assetId,
        `${kw(p.askedKw)} -> ${kw(p.kw)}${p.boundBy ? `  (${p.boundBy})` : ''}`,
      ];
    }
    case 'LIMITS_CHANGED': {
      const p = e.payload;
      const stale = p.staleMeters.length > 0 ? `; stale: ${p.staleMeters.join(', ')}` : '';
      const limits = p.limits.map((l) => `${l.target} ${l.limit} ${l.value} (${l.source})`);
      return ['limits', '-', `${limits.join(', ')}${stale}`];
    }
    case 'OPTIMISER_SILENT': {
      const p = e.payload;
      return [
        'silence',
        p.scheduleId,
        `no schedule for ${p.silentForSeconds} s: fallback for ${p.assets.join(', ')}`,
      ];
    }
    default: {
      const c = e.payload;
      const status = e.type.replace(/^COMMAND_/, '');
      let detail = '';
      if (status === 'DISPATCHED' && c.attempts > 1) detail = `attempt ${c.attempts}`;
      else if ((status === 'FAILED' || status === 'TIMED_OUT') && c.lastError) detail = c.lastError;
      else if (status === 'CREATED') detail = `at ${time(new Date(c.scheduledAt))}`;
      return [
        'command',
        c.assetId,
        `${pad(c.type, 20)} ${kw(c.valueKw).padStart(9)}  ${pad(status, 12)}${detail ? ` ${detail}` : ''}`.trimEnd(),
      ];
    }
  }
}

/** Node-RED's log levels, by number. */
const LEVELS: Record<number, string> = {
  10: 'fatal',
  20: 'error',
  30: 'warn',
  40: 'info',
  50: 'debug',
  60: 'trace',
};
/** Warnings that every start of an embedded Node-RED gives and that mean nothing here. */
const START_UP_NOISE = [/^Projects disabled/, /^Encrypted credentials not found/];

/** A Node-RED log handler: one line each, as `node-red <level> [type:name] message`. */
export function logLine(m: { level: number; msg: unknown; type?: string; name?: string }): void {
  const text = typeof m.msg === 'string' ? m.msg : inspect(m.msg);
  if (START_UP_NOISE.some((r) => r.test(text))) return;
  const who = m.type ? `[${m.type}${m.name ? `:${m.name}` : ''}] ` : '';
  say('node-red', LEVELS[m.level] ?? String(m.level), `${who}${text}`);
}

// --- the runtime's internals that we read (not in @types/node-red)

export interface RuntimeNodes {
  getNode(id: string): unknown;
  eachNode(cb: (n: { id: string; type: string }) => void): void;
}

/**
 * Follows the EventBus of every coordinator in the deployed flows, again after a deploy;
 * each event's line carries the siteId of its coordinator, so that the sites of a flow with
 * several coordinators can be told apart.
 */
export class EventPrinter {
  private readonly subs = new Map<string, { site: Core.Site; off: Core.Unsubscribe }>();

  constructor(private readonly nodes: RuntimeNodes) {}

  follow(): void {
    const seen = new Set<string>();
    this.nodes.eachNode((n) => {
      if (n.type !== 'qe-coordinator') return;
      const site = (this.nodes.getNode(n.id) as { site?: Core.Site | null } | null)?.site;
      if (!site) return;
      seen.add(n.id);
      const current = this.subs.get(n.id);
      if (current?.site === site) return;
      current?.off();
      siteWidth = Math.max(siteWidth, site.siteId.length);
      const off = site.eventBus.subscribe('*', (e) => sayFor(site.siteId, ...eventLine(e)));
      this.subs.set(n.id, { site, off });
    });
    for (const [id, s] of this.subs) {
      if (!seen.has(id)) {
        s.off();
        this.subs.delete(id);
      }
    }
  }

  close(): void {
    for (const s of this.subs.values()) s.off();
    this.subs.clear();
  }
}
