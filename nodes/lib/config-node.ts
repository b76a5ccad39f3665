/**
 * Config nodes (qe-coordinator, qe-ocpp-server, qe-modbus-connection, qe-fleet-broker) and
 * the nodes that use them, one way: a config node owns its users (the runtime forwards its
 * errors to their flows' Catch nodes), reports why it cannot run once the flows have started
 * (before that the Catch nodes may not exist), and a user node finds the config node it points
 * at and registers with it until it closes.
 */
import type { Node, NodeAPI, NodeMessage } from 'node-red';
import { NodeConfigError } from './errors';

/** What every config node of this package has (`Creds`: its Node-RED credentials). */
// biome-ignore lint/complexity/noBannedTypes: Node-RED's own default for credentials
export interface ConfigNode<Creds extends {} = {}> extends Node<Creds> {
  /** User nodes, by id: the runtime forwards this node's errors to their flows. */
  users: Record<string, Node>;
  /** Why it cannot run, if it cannot. */
  failure: string | null;
  register(user: Node): void;
  deregister(user: Node): void;
}

/**
 * Makes `node` a config node: no users yet, no failure. Returns `fail(text, msg?)`, which
 * sets `failure` and reports it as an error with a message (so that it reaches the users'
 * Catch nodes): now if the flows have started, else once they have (the last one, once).
 */
export function ownUsers<N extends ConfigNode>(
  RED: NodeAPI,
  node: N,
): (text: string, msg?: NodeMessage) => void {
  node.users = {};
  node.failure = null;
  node.register = (user) => {
    node.users[user.id] = user;
  };
  node.deregister = (user) => {
    delete node.users[user.id];
  };
  // Known from now: config nodes are made while the flows start.
  const flows = flowsPhase(RED);
  let report: (() => void) | null = null;
  return (text, msg = {}) => {
    node.failure = text;
    if (flows.started) {
      node.error(text, msg);
      return;
    }
    const waiting = report !== null;
    report = () => node.error(text, msg);
    if (!waiting) afterFlowsStart(RED, node, () => report?.());
  };
}

/**
 * Whether the flows have started, per runtime: two listeners for all the nodes (one each
 * would pass the emitter's limit of ten with as many config nodes).
 */
const phases = new WeakMap<object, { started: boolean }>();
function flowsPhase(RED: NodeAPI): { started: boolean } {
  const events = RED.events as unknown as object;
  let phase = phases.get(events);
  if (!phase) {
    const p = { started: false };
    RED.events.on('flows:starting', () => {
      p.started = false;
    });
    RED.events.on('flows:started', () => {
      p.started = true;
    });
    phases.set(events, p);
    phase = p;
  }
  return phase;
}

/**
 * Runs `fn` now when the flows have started, else once they have (so that an error it
 * reports reaches the Catch nodes); never after the node has closed.
 */
export function whenFlowsStarted(RED: NodeAPI, node: Node, fn: () => void): void {
  if (flowsPhase(RED).started) fn();
  else afterFlowsStart(RED, node, fn);
}

/** Runs `fn` once the flows have started; the listener goes when the node closes. */
export function afterFlowsStart(RED: NodeAPI, node: Node, fn: () => void): void {
  RED.events.once('flows:started', fn);
  node.on('close', () => RED.events.removeListener('flows:started', fn));
}

/**
 * The config node of `type` that property `id` of `user` points at, registered with until
 * `user` closes. Throws a NodeConfigError saying `missing` when there is none.
 */
export function useConfigNode<N extends ConfigNode>(
  RED: NodeAPI,
  user: Node,
  id: string | undefined,
  missing: string,
): N {
  const config = id ? (RED.nodes.getNode(id) as N | null) : null;
  if (!config) throw new NodeConfigError(user.type, missing);
  config.register(user);
  user.on('close', () => config.deregister(user));
  return config;
}
