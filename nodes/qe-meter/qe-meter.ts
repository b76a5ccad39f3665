/**
 * qe-meter: feeds readings of uncontrolled load (a building, a heat pump) to the site's
 * limits (`site.measure`), and passes each message on with the setpoints that the readings
 * limited. The readings' checks and the allocation are the core's (src/limits/).
 */
import type { Node, NodeAPI, NodeMessageInFlow } from 'node-red';
import { EventType, type SetpointLimited, summarizeReadings } from '../..';
import { clockTime, closeWith, type UserDef, useLimits, withSummary } from '../lib/common';
import { NodeConfigError, NodeInputError } from '../lib/errors';
import { Status } from '../lib/status';

interface MeterDef extends UserDef {
  meter?: string;
}

interface MeterMsg extends NodeMessageInFlow {
  limited?: SetpointLimited[];
}

const round = (v: unknown) =>
  typeof v === 'number' && Number.isFinite(v) ? String(Math.round(v * 10) / 10) : '?';

/** A reading in short: `28.4 kW`, `9.5/9.4/9.5 kW`, `16/15/14 A`. */
function short(r: Record<string, unknown>): string {
  if (Array.isArray(r.a)) return `${r.a.map(round).join('/')} A`;
  if (Array.isArray(r.kw)) return `${r.kw.map(round).join('/')} kW`;
  return `${round(r.kw)} kW`;
}

export default function (RED: NodeAPI) {
  function QeMeter(this: Node, def: MeterDef) {
    RED.nodes.createNode(this, def);
    const meterId = (def.meter ?? '').trim();
    const found = useLimits(RED, this, def, ({ site, limiter }) => {
      if (meterId !== '' && !limiter.limits.meters.has(meterId)) {
        const known = [...limiter.limits.meters.keys()];
        throw new NodeConfigError(
          'qe-meter',
          `meter ${JSON.stringify(meterId)} is not one of the meters of site ${site.siteId} (${known.length > 0 ? known.join(', ') : 'it has none'})`,
        );
      }
    });
    if (!found) return;
    const { site, limiter } = found;
    const status = new Status(this);
    let last: { text: string; meter: string } | null = null;

    const show = (stale: readonly string[]) => {
      const watched = meterId || last?.meter;
      if (watched && stale.includes(watched)) status.show('red', 'ring', 'qe-meter.status.stale');
      else if (last) status.show('green', 'dot', last.text);
      else status.show('grey', 'ring', 'qe-meter.status.waiting');
    };
    show(limiter.meters.stale(site.clock.now()));
    const off = site.eventBus.subscribe(EventType.LIMITS_CHANGED, (e) =>
      show(e.payload.staleMeters),
    );

    /** One item of the payload as a reading, the configured meter filled in where none is named. */
    const toReading = (r: unknown, where: string): Record<string, unknown> => {
      if (typeof r === 'number') {
        if (meterId === '') {
          throw new NodeInputError(
            'qe-meter',
            `${where} is a number but the node names no meter: set its Meter, or send {meter, kw}`,
          );
        }
        return { meter: meterId, kw: r };
      }
      if (r !== null && typeof r === 'object' && !Array.isArray(r)) {
        const o = r as Record<string, unknown>;
        return o.meter === undefined && meterId !== '' ? { ...o, meter: meterId } : o;
      }
      throw new NodeInputError(
        'qe-meter',
        `${where} must be a number (kW) or a reading {meter?, kw | a, at?}, got ${r === null ? 'null' : Array.isArray(r) ? 'an array' : typeof r}`,
      );
    };

    // In order with the site's other operations, and after its saved state is loaded.
    this.on('input', (msg: MeterMsg, send, done) => {
      void site.inOrder(() => handle(msg, send, done));
    });
    const handle = (
      msg: MeterMsg,
      send: (msg: NodeMessageInFlow) => void,
      done: (err?: Error) => void,
    ): void => {
      const p = msg.payload as unknown;
      const items = Array.isArray(p) ? p : [p];
      const limited: SetpointLimited[] = [];
      const readings: Record<string, unknown>[] = [];
      // What the readings limit is published while they are measured (synchronously).
      const offLimited = site.eventBus.subscribe(EventType.SETPOINT_LIMITED, (e) => {
        limited.push(e.payload);
      });
      try {
        if (items.length === 0)
          throw new NodeInputError('qe-meter', 'msg.payload is an empty array');
        // The core checks each reading as it is measured: the readings before a bad one are kept.
        items.forEach((item, i) => {
          const where = Array.isArray(p) ? `msg.payload[${i}]` : 'msg.payload';
          const reading = toReading(item, where);
          readings.push(reading);
          try {
            site.measure(reading);
          } catch (err) {
            throw NodeInputError.from('qe-meter', err, where);
          }
          const at = typeof reading.at === 'number' ? reading.at : site.clock.now();
          const meter = String(reading.meter);
          const prefix = meter !== meterId ? `${meter}: ` : '';
          last = { meter, text: `${prefix}${short(reading)} ${clockTime(at)}` };
        });
        msg.limited = limited;
        send(withSummary(msg, () => summarizeReadings(readings, limited)));
        done();
      } catch (err) {
        done(err as Error);
      } finally {
        offLimited();
        show(limiter.meters.stale(site.clock.now()));
      }
    };
    closeWith(this, off);
  }

  RED.nodes.registerType('qe-meter', QeMeter as never);
}
