import type { Node, NodeAPI, NodeMessage } from 'node-red';
import { type AnyBusEvent, EVENT_TYPES, type EventType, summarizeEvent } from '../..';
import { listField, type UserDef, useCoordinator, withSummary } from '../lib/common';

interface EventsDef extends UserDef {
  eventTypes?: string[] | string;
  assetFilter?: string;
}

/** The asset ids an event is about. */
function assetsOf(e: AnyBusEvent): string[] {
  const p = e.payload as { assetId?: unknown; assets?: unknown };
  if (typeof p.assetId === 'string') return [p.assetId];
  if (Array.isArray(p.assets)) return p.assets.map(String);
  return [];
}

export default function (RED: NodeAPI) {
  function QeEvents(this: Node, def: EventsDef) {
    RED.nodes.createNode(this, def);
    const found = useCoordinator(RED, this, def);
    const selected = listField(def.eventTypes);
    const types = (selected.length > 0 ? selected : [...EVENT_TYPES]) as EventType[];
    const unknown = types.filter((t) => !EVENT_TYPES.includes(t));
    if ('error' in found || unknown.length > 0) {
      const text =
        'error' in found
          ? found.error
          : `qe-events: unknown event type ${unknown.join(', ')}; use ${EVENT_TYPES.join(', ')}`;
      this.error(text);
      this.status({ fill: 'red', shape: 'ring', text: 'qe-events.status.misconfigured' });
      return;
    }
    const filter = new Set(listField(def.assetFilter));
    let count = 0;
    let statusTimer: NodeJS.Timeout | null = null;
    const showStatus = () => {
      statusTimer = null;
      this.status({
        fill: 'green',
        shape: 'dot',
        text: RED._('qe-events.status.count', { count }),
      });
    };
    this.status({ fill: 'green', shape: 'ring', text: 'qe-events.status.listening' });

    const off = found.site.eventBus.subscribe('*', (e) => {
      const index = types.indexOf(e.type);
      if (index < 0) return;
      if (filter.size > 0 && !assetsOf(e).some((a) => filter.has(a))) return;
      const msgs: (NodeMessage | null)[] = new Array(types.length).fill(null);
      // A copy: flows may change what they receive, other subscribers must not see that.
      msgs[index] = withSummary(
        RED.util.cloneMessage({ topic: e.type, payload: e.payload, event: e } as NodeMessage),
        () => summarizeEvent(e),
      );
      this.send(msgs);
      count++;
      if (statusTimer === null) statusTimer = setTimeout(showStatus, 250);
    });

    this.on('close', (_removed: boolean, done: () => void) => {
      off();
      if (statusTimer) clearTimeout(statusTimer);
      done();
    });
  }

  RED.nodes.registerType('qe-events', QeEvents as never);
}
