/**
 * qe-limit: dynamic caps from messages (a grid operator's cap on the connection, §14a's
 * 4.2 kW per device) set on the site's limits (`site.setCap`), and every change of the limits
 * in force (LIMITS_CHANGED) on its output. Which limit wins and when a cap expires is the
 * core's (src/limits/).
 */
import type { Node, NodeAPI, NodeMessageInFlow, NodeStatus } from 'node-red';
import { EventType, type LimitInForce, summarizeEvent } from '../..';
import { clockTime, closeWith, type UserDef, useLimits, withSummary } from '../lib/common';
import { NodeInputError } from '../lib/errors';
import { Status } from '../lib/status';

const UNIT: Record<string, string> = { importKw: 'kW', exportKw: 'kW export', importA: 'A' };

/**
 * The status for the limits in force on the root circuit: the most restrictive import limit
 * (kW first, else A per phase) with its source, e.g. `root ≤ 42 kW (grid-operator)`.
 */
export function rootStatus(limits: readonly LimitInForce[], root: string): NodeStatus {
  const on = limits.filter((l) => l.scope === 'circuit' && l.target === root);
  const pick = (limit: string) =>
    on
      .filter((l) => l.limit === limit)
      .reduce<LimitInForce | null>((m, l) => (m === null || l.value < m.value ? l : m), null);
  const best = pick('importKw') ?? pick('importA') ?? pick('exportKw');
  if (!best) return { fill: 'grey', shape: 'ring', text: 'qe-limit.status.none' };
  const until = best.until !== undefined ? ` until ${clockTime(best.until)}` : '';
  return {
    fill: best.source === 'config' ? 'green' : 'yellow',
    shape: 'dot',
    text: `${root} ≤ ${best.value} ${UNIT[best.limit] ?? best.limit} (${best.source})${until}`,
  };
}

export default function (RED: NodeAPI) {
  function QeLimit(this: Node, def: UserDef) {
    RED.nodes.createNode(this, def);
    const found = useLimits(RED, this, def);
    if (!found) return;
    const { site, limiter } = found;
    const root = limiter.limits.order[0] as string;
    const status = new Status(this);
    status.set(rootStatus(limiter.inForce(), root));

    const off = site.eventBus.subscribe(EventType.LIMITS_CHANGED, (e) => {
      status.set(rootStatus(e.payload.limits, root));
      // A copy: flows may change what they receive, other subscribers must not see that.
      this.send(
        withSummary(RED.util.cloneMessage({ topic: 'LIMITS_CHANGED', payload: e.payload }), () =>
          summarizeEvent(e),
        ),
      );
    });

    // In order with the site's other operations, and after its saved state is loaded.
    this.on('input', (msg: NodeMessageInFlow, _send, done) => {
      void site.inOrder(() => handle(msg, done));
    });
    const handle = (msg: NodeMessageInFlow, done: (err?: Error) => void): void => {
      const p = msg.payload as unknown;
      const caps = Array.isArray(p) ? p : [p];
      try {
        if (caps.length === 0)
          throw new NodeInputError('qe-limit', 'msg.payload is an empty array');
        // The core checks each cap as it is set: the caps before a bad one are kept.
        caps.forEach((cap, i) => {
          const where = Array.isArray(p) ? `msg.payload[${i}]` : 'msg.payload';
          if (cap === null || typeof cap !== 'object' || Array.isArray(cap)) {
            throw new NodeInputError(
              'qe-limit',
              `${where} must be a cap {id, source, importKw?, ..., expiresAt?} or {id, clear: true}, got ${cap === null ? 'null' : Array.isArray(cap) ? 'an array' : typeof cap}`,
            );
          }
          try {
            site.setCap(cap);
          } catch (err) {
            throw NodeInputError.from('qe-limit', err, where);
          }
        });
        done();
      } catch (err) {
        done(err as Error);
      }
    };
    closeWith(this, off);
  }

  RED.nodes.registerType('qe-limit', QeLimit as never);
}
