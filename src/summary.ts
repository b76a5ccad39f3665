/**
 * One-line, human-readable summaries of what the package publishes: every bus event
 * (EventType), a command, a device's answer to a command, what an OCPP charger did, a Modbus
 * battery's telemetry and notes, and meter readings with the setpoints they limited. Pure
 * functions (no clock, no I/O): the Node-RED nodes put them in `msg.summary` for debug
 * nodes and notifications, and TypeScript users get the same texts.
 * Times are shown in UTC (HH:MM:SS), taken from the ISO times of the payloads.
 */
import type { CommandJSON } from './commands';
import { type AnyBusEvent, EventType, type SetpointLimited } from './event-bus';
import type { LimitInForce } from './limits/types';

/** kW (or any number) in short: at most two decimals, no trailing zeros; `?` if not a number. */
export function fmtNumber(v: unknown): string {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '?';
  const r = Math.round(v * 100) / 100;
  return String(Object.is(r, -0) ? 0 : r);
}

/** HH:MM:SS of an ISO time (UTC), or the text itself when it is not one. */
function hms(iso: unknown): string {
  if (typeof iso !== 'string') return '?';
  const t = Date.parse(iso);
  return Number.isNaN(t) ? iso : new Date(t).toISOString().slice(11, 19);
}

const UNITS: Record<string, string> = {
  importKw: 'kW',
  exportKw: 'kW',
  maxKw: 'kW',
  importA: 'A',
  exportA: 'A',
};

/** A limit in force in short: `grid importKw <= 42 kW (config)`. */
export function summarizeLimit(l: LimitInForce): string {
  const unit = UNITS[l.limit] ?? '';
  const until =
    l.until !== undefined ? ` until ${new Date(l.until).toISOString().slice(11, 19)}` : '';
  return `${l.target} ${l.limit} <= ${fmtNumber(l.value)}${unit ? ` ${unit}` : ''} (${l.source})${until}`;
}

/** A command in short: `ast_ev_001 SET_CHARGE_RATE 7.4 kW (re-applied) (asked 11 kW, <limit>)`. */
export function summarizeCommand(
  c: Pick<CommandJSON, 'assetId' | 'type' | 'valueKw'> &
    Partial<Pick<CommandJSON, 'reapplyOf' | 'askedKw' | 'limitedBy'>>,
): string {
  let s = `${c.assetId} ${c.type} ${fmtNumber(c.valueKw)} kW`;
  if (c.reapplyOf) s += ' (re-applied)';
  if (typeof c.askedKw === 'number' && c.askedKw !== c.valueKw) {
    s += ` (asked ${fmtNumber(c.askedKw)} kW${c.limitedBy ? `, ${c.limitedBy}` : ''})`;
  }
  return s;
}

/**
 * A setpoint the site's limits changed, with the limit that bound it and what started the
 * allocation: `ast_ev_002 limited 11 -> 5 kW (circuit grid importKw (config)) after meter building`.
 */
export function summarizeLimited(p: SetpointLimited): string {
  if (p.kw === p.askedKw) return `${p.assetId} ${fmtNumber(p.kw)} kW as asked (${p.reason})`;
  const after = p.boundBy ? ` after ${p.reason}` : '';
  return `${p.assetId} limited ${fmtNumber(p.askedKw)} -> ${fmtNumber(p.kw)} kW (${p.boundBy ?? p.reason})${after}`;
}

/** Any bus event in one line, e.g. `ast_ev_001 SET_CHARGE_RATE 7.4 kW COMPLETED`. */
export function summarizeEvent(event: Pick<AnyBusEvent, 'type' | 'payload'>): string {
  const e = event as AnyBusEvent;
  switch (e.type) {
    case EventType.COMMAND_CREATED:
    case EventType.COMMAND_DISPATCHED:
    case EventType.COMMAND_ACKNOWLEDGED:
    case EventType.COMMAND_COMPLETED:
    case EventType.COMMAND_FAILED:
    case EventType.COMMAND_TIMED_OUT:
    case EventType.COMMAND_CANCELLED: {
      const c = e.payload;
      const why = c.history?.[c.history.length - 1]?.reason ?? null;
      const status = e.type.slice('COMMAND_'.length);
      return `${summarizeCommand(c)} ${status}${why ? ` (${why})` : ''}`;
    }
    case EventType.STATE_CHANGED: {
      const p = e.payload;
      return `${p.assetId} ${p.from_state} -> ${p.to_state}${p.reason ? ` (${p.reason})` : ''}`;
    }
    case EventType.SCHEDULE_RECEIVED: {
      const p = e.payload;
      const assets = p.assets.length === 1 ? '1 asset' : `${p.assets.length} assets`;
      const cmds = p.commandCount === 1 ? '1 command' : `${p.commandCount} commands`;
      return `schedule ${p.scheduleId}: ${p.slots} slots of ${p.slotSeconds} s from ${hms(p.start)} UTC, ${assets}, ${cmds}`;
    }
    case EventType.ASSET_DEVIATION: {
      const p = e.payload;
      return `${p.assetId} DEVIATION: ${p.reason} since ${hms(p.since)} UTC`;
    }
    case EventType.ASSET_COMPLIANT: {
      const p = e.payload;
      return `${p.assetId} compliant again after ${Math.round(p.deviatedForMs / 1000)} s: ${fmtNumber(p.measuredKw)} kW for a ${fmtNumber(p.setpointKw)} kW setpoint`;
    }
    case EventType.SETPOINT_LIMITED:
      return summarizeLimited(e.payload);
    case EventType.LIMITS_CHANGED: {
      const p = e.payload;
      const limits = p.limits.length > 0 ? p.limits.map(summarizeLimit).join(', ') : 'none';
      const stale = p.staleMeters.length > 0 ? `; stale: ${p.staleMeters.join(', ')}` : '';
      return `limits: ${limits}${stale}`;
    }
    case EventType.OPTIMISER_SILENT: {
      const p = e.payload;
      const n = p.commandIds.length;
      return `optimiser silent for ${Math.round(p.silentForSeconds)} s (last schedule ${p.scheduleId}): ${n} fallback ${n === 1 ? 'setpoint' : 'setpoints'} for ${p.assets.join(', ') || 'no asset'}`;
    }
    default:
      return `${String((e as { type: unknown }).type)}`;
  }
}

/** An error (a string, an Error, an object with a message) as text. */
function errorText(e: unknown): string {
  if (typeof e === 'string') return e;
  if (e && typeof e === 'object' && typeof (e as { message?: unknown }).message === 'string')
    return (e as { message: string }).message;
  return e === undefined || e === null ? 'no reason given' : JSON.stringify(e);
}

/**
 * A device's answer to a command (the first output of qe-ocpp and qe-modbus), or a Modbus
 * watchdog re-write: `ast_ev_001 SET_CHARGE_RATE 7.4 kW: ok`, `...: failed: <why> (final)`.
 */
export function summarizeResult(r: {
  success?: unknown;
  error?: unknown;
  final?: unknown;
  command?: Parameters<typeof summarizeCommand>[0];
  commandId?: unknown;
  assetId?: string;
  rewrite?: string;
  kw?: number;
}): string {
  const what = r.command
    ? summarizeCommand(r.command)
    : r.rewrite
      ? `${r.assetId ?? '?'} ${r.rewrite} ${fmtNumber(r.kw)} kW`
      : `command ${String(r.commandId ?? '?')}`;
  if (r.success === true) return `${what}: ok`;
  return `${what}: failed: ${errorText(r.error)}${r.final === true ? ' (final)' : ''}`;
}

/** What an OCPP charger did (the second output of qe-ocpp): `CP001 connected: ocpp1.6`. */
export function summarizeChargerEvent(event: { type: string; identity: string }): string {
  const e = event as { type: string; identity: string } & Record<string, unknown>;
  if (typeof e.message === 'string') return `${e.identity} ${e.type}: ${e.message}`;
  const readings = Array.isArray(e.readings) ? (e.readings as { powerW?: unknown }[]) : [];
  const last = readings[readings.length - 1];
  const parts = [
    e.protocol,
    e.status,
    e.errorCode && e.errorCode !== 'NoError' ? e.errorCode : undefined,
    e.chargingState,
    e.transactionId !== undefined ? `transaction ${String(e.transactionId)}` : undefined,
    typeof last?.powerW === 'number' ? `${fmtNumber(last.powerW)} W` : undefined,
    e.reason,
    e.error,
  ].filter((v) => v !== undefined && v !== null && v !== '');
  return parts.length > 0
    ? `${e.identity} ${e.type}: ${parts.join(', ')}`
    : `${e.identity} ${e.type}`;
}

/** A battery's telemetry (the second output of qe-modbus): `b1: SoC 55 %, -10 kW, DISCHARGING`. */
export function summarizeTelemetry(t: {
  assetId: string;
  socPercent?: number;
  powerKw?: number;
  state?: string;
}): string {
  const parts = [
    typeof t.socPercent === 'number' ? `SoC ${fmtNumber(t.socPercent)} %` : undefined,
    typeof t.powerKw === 'number' ? `${fmtNumber(t.powerKw)} kW` : undefined,
    t.state,
  ].filter(Boolean);
  return `${t.assetId}: ${parts.length > 0 ? parts.join(', ') : 'no reading'}`;
}

/** Meter readings and what they limited (qe-meter): `building 28.4 kW: 1 setpoint limited (...)`. */
export function summarizeReadings(
  readings: readonly { meter?: unknown; kw?: unknown; a?: unknown }[],
  limited: readonly SetpointLimited[],
): string {
  const one = (r: { meter?: unknown; kw?: unknown; a?: unknown }) => {
    const v = Array.isArray(r.a)
      ? `${r.a.map(fmtNumber).join('/')} A`
      : Array.isArray(r.kw)
        ? `${r.kw.map(fmtNumber).join('/')} kW`
        : `${fmtNumber(r.kw)} kW`;
    return `${String(r.meter ?? '?')} ${v}`;
  };
  const what = limited.filter((l) => l.kw !== l.askedKw);
  const tail =
    what.length === 0
      ? 'no setpoint limited'
      : what.length === 1
        ? summarizeLimited(what[0] as SetpointLimited)
        : `${what.length} setpoints limited`;
  return `${readings.map(one).join(', ')}: ${tail}`;
}
