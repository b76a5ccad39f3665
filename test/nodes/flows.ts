/**
 * Shared pieces of the node tests: the compiled nodes, flow builders, and waiting for
 * messages. Tests run against the build (nodes/<type>/<type>.js), as Node-RED loads it.
 */
import type { Node, NodeInitializer } from 'node-red';
import type { Site } from '../..';
import type { CoordinatorNode } from '../../nodes/lib/common';
import { helper } from './runtime';

const load = (type: string): NodeInitializer =>
  require(`../../nodes/${type}/${type}.js`).default as NodeInitializer;

export const NODE_TYPES = [
  'qe-coordinator',
  'qe-schedule',
  'qe-dispatcher',
  'qe-asset-state',
  'qe-events',
  'qe-adapter',
  'qe-meter',
  'qe-limit',
  'qe-fleet-broker',
  'qe-fleet',
] as const;

export const allNodes = (): NodeInitializer[] => NODE_TYPES.map(load);

export type FlowNode = Record<string, unknown> & { id: string; type: string };

export function coordinator(extra: Record<string, unknown> = {}): FlowNode {
  return {
    id: 'coord',
    type: 'qe-coordinator',
    siteId: 'depot',
    commandTimeoutSeconds: 30,
    maxRetries: 3,
    retryBackoffFactor: 2,
    retryBaseSeconds: 2,
    retryMaxSeconds: 60,
    dispatchIntervalSeconds: 5,
    deadbandKw: 0.001,
    horizonEnd: 'hold',
    fallbackKw: '{}',
    persist: false,
    ...extra,
  };
}

export function siteOf(id = 'coord'): Site {
  const n = helper.getNode(id) as unknown as CoordinatorNode;
  if (!n?.site) throw new Error(`no site on node ${id}`);
  return n.site;
}

export interface Received {
  msg: Record<string, unknown>;
}

/** Collects the messages that reach a helper node, and waits for them. */
export class Inbox {
  readonly msgs: Record<string, unknown>[] = [];
  private waiters: { n: number; resolve: () => void }[] = [];
  constructor(node: Node) {
    node.on('input', (msg: Record<string, unknown>) => {
      this.msgs.push(msg);
      this.waiters = this.waiters.filter((w) => {
        if (this.msgs.length >= w.n) {
          w.resolve();
          return false;
        }
        return true;
      });
    });
  }
  /** Resolves when `n` messages in all have arrived. */
  count(n: number): Promise<void> {
    if (this.msgs.length >= n) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ n, resolve }));
  }
}

/** Lets setImmediate / nextTick work (message delivery) run. */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}

export function inbox(id: string): Inbox {
  return new Inbox(helper.getNode(id));
}

/** A Catch node wired to a helper node that receives what it catches. */
export function catcher(id = 'catchAll', to = 'caught'): FlowNode[] {
  return [
    { id, type: 'catch', scope: null, uncaught: false, wires: [[to]] },
    { id: to, type: 'helper' },
  ];
}

/** Puts flow nodes on one tab (`z`), leaving config nodes global, as the editor does. */
export function onTab(nodes: FlowNode[], tab = 'f1'): FlowNode[] {
  return [
    { id: tab, type: 'tab', label: 'test' },
    ...nodes.map((n) => (n.type === 'qe-coordinator' || n.type === 'tab' ? n : { ...n, z: tab })),
  ];
}
