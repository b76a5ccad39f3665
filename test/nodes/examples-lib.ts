/**
 * What the tests of the example flows share (test/nodes/examples*.test.ts): reading the
 * flows under examples/, the node initialisers that a flow needs, pressing inject buttons,
 * watching what reaches a node, and what the debug nodes show in the editor's sidebar.
 */
import type { EventEmitter } from 'node:events';
import fs from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import type { NodeAPI, NodeInitializer } from 'node-red';
import should from 'should';
import type sinon from 'sinon';
import { allNodes, type FlowNode, NODE_TYPES } from './flows';
import { coreNode, helper, runtimeRequire } from './runtime';

export const EXAMPLES = path.join(__dirname, '../../examples');
export const files = fs
  .readdirSync(EXAMPLES)
  .filter((f) => f.endsWith('.json'))
  .sort();

export type ExampleNode = FlowNode & {
  z?: string;
  name?: string;
  x?: number;
  y?: number;
  wires?: string[][];
  coordinator?: string;
};

export const readExample = (file: string): ExampleNode[] =>
  JSON.parse(fs.readFileSync(path.join(EXAMPLES, file), 'utf8')) as ExampleNode[];

/**
 * Node-RED core node types that examples may use, and the file of @node-red/nodes/core
 * that defines each. null: the helper loads it itself (catch, status, complete).
 */
export const CORE_TYPES: Record<string, string | null> = {
  inject: 'common/20-inject.js',
  debug: 'common/21-debug.js',
  comment: 'common/90-comment.js',
  'link in': 'common/60-link.js',
  'link out': 'common/60-link.js',
  'link call': 'common/60-link.js',
  junction: 'common/05-junction.js',
  catch: null,
  status: null,
  complete: null,
  function: 'function/10-function.js',
  change: 'function/15-change.js',
  switch: 'function/10-switch.js',
  'http in': 'network/21-httpin.js',
  'http response': 'network/21-httpin.js',
  'file in': 'storage/10-file.js',
};
/** Node types of the package beyond NODE_TYPES (the OCPP nodes, loaded on their own). */
export const OCPP_TYPES = ['qe-ocpp-server', 'qe-ocpp', 'qe-modbus-connection', 'qe-modbus'];
export const OURS = new Set<string>([...NODE_TYPES, ...OCPP_TYPES]);
export const CONFIG_TYPES = new Set([
  'qe-coordinator',
  'qe-ocpp-server',
  'qe-modbus-connection',
  'qe-fleet-broker',
]);

/** Express app that the runtime's http in nodes register their routes on. */
export const captured: { httpNode: http.RequestListener | null } = { httpNode: null };

/** Our nodes and the core nodes that a flow needs, for helper.load. */
export function initialisersFor(flow: ExampleNode[]): NodeInitializer[] {
  const coreFiles = new Set<string>();
  for (const n of flow) {
    const file = CORE_TYPES[n.type];
    if (file) coreFiles.add(file);
  }
  return [
    ...allNodes(),
    ...OCPP_TYPES.map((t) => require(`../../nodes/${t}/${t}.js`).default as NodeInitializer),
    ...[...coreFiles].map((file) => {
      const init = coreNode(file);
      if (file !== 'network/21-httpin.js') return init;
      // Keep the app that http in registers its routes on, to send it real requests.
      return ((RED: NodeAPI) => {
        captured.httpNode = RED.httpNode as unknown as http.RequestListener;
        return init(RED);
      }) as NodeInitializer;
    }),
  ];
}

export function findNode(flow: ExampleNode[], name: string, wiredTo?: string): ExampleNode {
  const target = wiredTo === undefined ? undefined : findNode(flow, wiredTo).id;
  const found = flow.filter(
    (n) => n.name === name && (target === undefined || (n.wires ?? []).flat().includes(target)),
  );
  if (found.length !== 1) {
    throw new Error(
      `expected one node named "${name}"${wiredTo ? ` wired to "${wiredTo}"` : ''}, found ${found.length}`,
    );
  }
  return found[0] as ExampleNode;
}

/** Presses an inject node's button (what the editor does: an input message). */
export function press(flow: ExampleNode[], name: string, wiredTo?: string): void {
  helper.getNode(findNode(flow, name, wiredTo).id).receive({} as never);
}

/** Messages that reach a node of the flow (a debug node, a function node...). */
export function arrivals(flow: ExampleNode[], name: string): Record<string, unknown>[] {
  const msgs: Record<string, unknown>[] = [];
  helper
    .getNode(findNode(flow, name).id)
    .on('input', (msg: Record<string, unknown>) => msgs.push(msg));
  return msgs;
}

/** What nodes logged at warn level or worse (error 20, warn 30), as `type name: message`. */
export function warnings(): string[] {
  const spy = helper.log() as sinon.SinonSpy;
  return spy.args
    .map((a) => a[0] as { level: number; msg: unknown; id?: string; type?: string; name?: string })
    .filter((e) => e.id !== undefined && e.level <= 30)
    .map((e) => `${e.type} ${e.name ?? e.id}: ${String(e.msg)}`);
}

export function coordinatorOf(flow: ExampleNode[]): string {
  const coords = flow.filter((n) => n.type === 'qe-coordinator');
  should(coords).have.length(1);
  return (coords[0] as ExampleNode).id;
}

/** One message of a debug node in the editor's debug sidebar (what the editor receives). */
export interface SidebarMessage {
  id: string;
  name?: string;
  topic?: string;
  /** How the editor shows the value: `string[42]`, `Object`, `number`... */
  format?: string;
  msg: unknown;
}

/**
 * Records what the debug nodes send to the editor's debug sidebar (the runtime's `comms`
 * event with topic `debug`, which the editor's websocket relays) until `stop()`.
 */
export function watchSidebar(): { messages: SidebarMessage[]; stop(): void } {
  const { events } = runtimeRequire('@node-red/util') as { events: EventEmitter };
  const messages: SidebarMessage[] = [];
  const listener = (e: { topic: string; data: SidebarMessage }) => {
    if (e.topic === 'debug' && typeof e.data?.id === 'string') messages.push(e.data);
  };
  events.on('comms', listener);
  return { messages, stop: () => events.off('comms', listener) };
}

/**
 * What the debug node `name` of the flow showed in the sidebar: each entry must be a short
 * one-line string (no `[object Object]`, no missing field leaving `undefined`, a double
 * space or a dangling separator), and there must be at least one.
 */
export function readableDebug(
  flow: ExampleNode[],
  messages: SidebarMessage[],
  name: string,
): string[] {
  const id = findNode(flow, name).id;
  const mine = messages.filter((m) => m.id === id);
  should(mine.length).be.above(0, `the debug node "${name}" showed nothing in the sidebar`);
  return mine.map((m) => {
    should(m.format).match(/^string\[\d+\]$/, `"${name}" showed ${m.format}: ${String(m.msg)}`);
    const text = m.msg as string;
    should(text).match(/^\S[^\n]{0,238}\S$/, `"${name}": ${text}`);
    should(text).not.match(/undefined|\[object |\s\s|[:,(]$|\(\)/, `"${name}": ${text}`);
    return text;
  });
}
