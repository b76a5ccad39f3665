/**
 * qe-events ("event fan-out"): the site's events (the core's event bus) out of one output per
 * selected event type, filtered by asset; the status counts them.
 */
import type { Node, NodeAPI, NodeMessage } from 'node-red';
import { type AnyBusEvent, EVENT_TYPES, type EventType, summarizeEvent } from '../..';
import {
  closeWith,
  listField,
  setUp,
  type UserDef,
  useCoordinator,
  withSummary,
} from '../lib/common';
import { NodeConfigError } from '../lib/errors';
import { Status } from '../lib/status';

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
    const selected = listField(def.eventTypes);
    const types = (selected.length > 0 ? selected : [...EVENT_TYPES]) as EventType[];
    const found = setUp(this, () => {
      const used = useCoordinator(RED, this, def);
      const unknown = types.filter((t) => !EVENT_TYPES.includes(t));
      if (unknown.length > 0) {
        throw new NodeConfigError(
          'qe-events',
          `unknown event type ${unknown.join(', ')}; use ${EVENT_TYPES.join(', ')}`,
        );
      }
      return used;
    });
    if (!found) return;
    const filter = new Set(listField(def.assetFilter));
    let count = 0;
    const status = new Status(this, () => ({
      fill: 'green',
      shape: 'dot',
      text: RED._('qe-events.status.count', { count }),
    }));
    status.show('green', 'ring', 'qe-events.status.listening');

    // One subscription per selected type, not '*': the core makes some events only when
    // someone listens to their type (a plan's COMMAND_CREATED, one per planned row).
    const onEvent = (e: AnyBusEvent) => {
      const index = types.indexOf(e.type);
      if (filter.size > 0 && !assetsOf(e).some((a) => filter.has(a))) return;
      const msgs: (NodeMessage | null)[] = new Array(types.length).fill(null);
      // A copy: flows may change what they receive, other subscribers must not see that.
      msgs[index] = withSummary(
        RED.util.cloneMessage({ topic: e.type, payload: e.payload, event: e } as NodeMessage),
        () => summarizeEvent(e),
      );
      this.send(msgs);
      count++;
      status.refresh();
    };
    closeWith(this, found.site.eventBus.subscribeTypes(types, onEvent));
  }

  RED.nodes.registerType('qe-events', QeEvents as never);
}
