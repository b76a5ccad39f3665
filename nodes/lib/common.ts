/**
 * What the node files share: the coordinator node's shape, finding it from a user node, a
 * user node's set-up (`setUp`: a NodeConfigError makes it refuse input), parsing of editor
 * fields, short status texts. Node files stay thin: the logic is in the core library. Also in
 * nodes/lib: errors.ts (NodeConfigError, NodeInputError), status.ts (Status), config-node.ts
 * (config nodes and their users), device.ts (the OCPP and Modbus device nodes), timeline.ts.
 */
import type { Node, NodeAPI, NodeDef, NodeStatus } from 'node-red';
import {
  type Conversion,
  type ConvertOptions,
  commandToJSON,
  type NetProblem,
  planOfConversionAsync,
  type Site,
  type SiteLimiter,
} from '../..';
import { type ConfigNode, useConfigNode } from './config-node';
import { NodeConfigError } from './errors';

/**
 * Sets `msg.summary`, the one-line text for debug nodes and notifications, from one of the
 * core's summaries (src/summary.ts). A summary that cannot be made (an odd payload from a
 * flow) leaves the message without one: it never stops the message.
 */
export function withSummary<M extends object>(msg: M, summarize: () => string): M {
  try {
    (msg as M & { summary?: string }).summary = summarize();
  } catch {
    // the message goes on without a summary
  }
  return msg;
}

export interface CoordinatorNode extends ConfigNode {
  site: Site | null;
}

export interface UserDef extends NodeDef {
  coordinator?: string;
}

/**
 * The site of the coordinator a node points at, registering the node as a user of it.
 * Throws a NodeConfigError when there is none, or when it could not start (its reason).
 */
export function useCoordinator(
  RED: NodeAPI,
  node: Node,
  def: UserDef,
): { coordinator: CoordinatorNode; site: Site } {
  const coordinator = def.coordinator
    ? (RED.nodes.getNode(def.coordinator) as CoordinatorNode | null)
    : null;
  // Plain text: RED._ only reaches the calling node's own catalog, not the coordinator's.
  if (!coordinator) {
    throw new NodeConfigError(
      node.type,
      `no coordinator: pick a qe-coordinator (the site) in this node's properties`,
    );
  }
  coordinator.register(node);
  node.on('close', () => coordinator.deregister(node));
  if (!coordinator.site) {
    throw new NodeConfigError(node.type, coordinator.failure ?? 'the coordinator could not start');
  }
  return { coordinator, site: coordinator.site };
}

/**
 * The site of the node's coordinator and the config node of its property `configId` (the
 * central system, the bus, the broker). Both are looked up, and registered with, before either
 * is checked (a user registers with each it points at); throws the first problem.
 */
export function useCoordinatorAnd<C extends ConfigNode>(
  RED: NodeAPI,
  node: Node,
  def: UserDef,
  configId: string | undefined,
  missing: string,
): { site: Site; config: C } {
  const found = settle(() => useCoordinator(RED, node, def));
  const config = settle(() => useConfigNode<C>(RED, node, configId, missing));
  if ('error' in found) throw found.error;
  if ('error' in config) throw config.error;
  return { site: found.value.site, config: config.value };
}

function settle<T>(f: () => T): { value: T } | { error: unknown } {
  try {
    return { value: f() };
  } catch (error) {
    return { error };
  }
}

/**
 * Runs a user node's set-up. If it throws (a NodeConfigError, or any error, which becomes
 * `<type>: <its message>`), the node refuses input with that error and this returns null.
 */
export function setUp<T>(node: Node, build: () => T): T | null {
  try {
    return build();
  } catch (err) {
    refuseInput(node, NodeConfigError.from(node.type, err));
    return null;
  }
}

/** A JSON-object field of the edit dialog (a string), or an Error naming the field. */
export function parseJsonObject(
  text: unknown,
  field: string,
  node: string,
): Record<string, unknown> | Error {
  if (text === undefined || text === null || text === '') return {};
  if (typeof text === 'object' && !Array.isArray(text)) return text as Record<string, unknown>;
  try {
    const v = JSON.parse(String(text));
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      return new Error(`${node}: ${field} must be a JSON object, got ${String(text).slice(0, 60)}`);
    }
    return v as Record<string, unknown>;
  } catch (err) {
    return new Error(`${node}: ${field} is not valid JSON: ${(err as Error).message}`);
  }
}

/** The schedule conversion fields of an edit dialog (qe-schedule, qe-fleet). */
export interface ScheduleFields {
  assetMap?: string;
  ratedKw?: string;
  timeZone?: string;
  ignoreUnmapped?: boolean;
  limitColumn?: string;
}

/**
 * The conversion options of a node's schedule fields (asset map, rated kW, time zone,
 * unmapped columns, limit column), or an Error naming the field and the node.
 */
export function scheduleOptions(
  def: ScheduleFields,
  node: string,
): Omit<ConvertOptions, 'now'> | Error {
  const assetMap = parseJsonObject(def.assetMap, 'assetMap', node);
  if (assetMap instanceof Error) return assetMap;
  const ratedKw = parseJsonObject(def.ratedKw, 'ratedKw', node);
  if (ratedKw instanceof Error) return ratedKw;
  const limitColumn = typeof def.limitColumn === 'string' ? def.limitColumn.trim() : '';
  return {
    assetMap: assetMap as Record<string, string>,
    ratedKw: ratedKw as Record<string, number>,
    ignoreUnmapped: def.ignoreUnmapped === true,
    timeZone: (typeof def.timeZone === 'string' ? def.timeZone.trim() : '') || 'UTC',
    ...(limitColumn === '' ? {} : { limitColumn }),
  };
}

/**
 * Up to this many commands, a schedule's msg.payload carries them as JSON too (for debug
 * nodes, functions and older flows); a bigger schedule travels only as msg.plan.
 */
export const PAYLOAD_COMMANDS_MAX = 1000;

/**
 * What a converted schedule adds to its message (qe-schedule, qe-fleet), for a qe-dispatcher:
 * `plan` (its columns, copied in slices: `planOfConversionAsync`), `payload` (the commands'
 * JSON while they are at most PAYLOAD_COMMANDS_MAX, else the summary), `schedule` (the
 * summary), and `limits` when the node reads a limit column.
 */
export async function scheduleMessage(
  conversion: Conversion,
  options: Omit<ConvertOptions, 'now'>,
): Promise<Record<string, unknown>> {
  const count = conversion.changes.count;
  const msg: Record<string, unknown> = {};
  // Its columns copied in slices too (161,676 rows for 10,000 assets x 96 slots).
  msg.plan = await planOfConversionAsync(conversion);
  msg.payload =
    count <= PAYLOAD_COMMANDS_MAX ? conversion.commands.map(commandToJSON) : conversion.summary;
  msg.schedule = conversion.summary;
  if (options.limitColumn !== undefined) msg.limits = conversion.limits;
  return msg;
}

/** A number field of the edit dialog (strings in flows), or undefined when empty. */
export function numberField(value: unknown): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const n = typeof value === 'number' ? value : Number(value);
  return Number.isFinite(n) ? n : Number.NaN;
}

/**
 * A table field of the edit dialog (the chargers, the batteries): a list, or its JSON text
 * (empty: no rows), or an Error naming the field and the node.
 */
export function tableField(value: unknown, field: string, node: string): unknown[] | Error {
  let list: unknown = value;
  if (typeof value === 'string') {
    try {
      list = value.trim() === '' ? [] : JSON.parse(value);
    } catch (err) {
      return new Error(`${node}: ${field} is not valid JSON: ${(err as Error).message}`);
    }
  }
  return Array.isArray(list) ? list : new Error(`${node}: ${field} must be a list`);
}

/** A list field: an array, or a comma/space separated string. */
export function listField(value: unknown): string[] {
  if (Array.isArray(value))
    return value
      .map(String)
      .map((s) => s.trim())
      .filter(Boolean);
  if (typeof value !== 'string') return [];
  return value
    .split(/[,\s]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/** HH:MM:SS of an epoch-ms time, local time of the server, for short status texts. */
export function clockTime(ms: number): string {
  const d = new Date(ms);
  return [d.getHours(), d.getMinutes(), d.getSeconds()]
    .map((n) => String(n).padStart(2, '0'))
    .join(':');
}

/**
 * The status of a node whose bus or listener cannot open: red ring, the cause in short from
 * the node's catalog (`<type>.status.net.<op>.<code>`, which repeats the core's English
 * texts), or the core's text when the catalog has none.
 */
export function problemStatus(RED: NodeAPI, type: string, problem: NetProblem): NodeStatus {
  const key = `${type}.status.net.${problem.op}.${problem.code}`;
  const text = RED._(key, problem.params);
  return {
    fill: 'red',
    shape: 'ring',
    text: typeof text === 'string' && text !== '' && !text.endsWith(key) ? text : problem.text,
  };
}

/**
 * For the nodes on a site's limits (qe-limit, qe-meter): the site and its limiter (the
 * coordinator's Limits property), after `check` (which may throw a NodeConfigError), or null when
 * the node refuses input.
 */
export function useLimits(
  RED: NodeAPI,
  node: Node,
  def: UserDef,
  check: (found: { site: Site; limiter: SiteLimiter }) => void = () => {},
): { site: Site; limiter: SiteLimiter } | null {
  return setUp(node, () => {
    const { site } = useCoordinator(RED, node, def);
    if (!site.limiter) {
      throw new NodeConfigError(
        node.type,
        `site ${site.siteId} has no limits: give its coordinator circuits, assets and meters (its Limits property)`,
      );
    }
    const found = { site, limiter: site.limiter };
    check(found);
    return found;
  });
}

/**
 * What a node undoes when it closes (its subscriptions' unsubscribe functions, a detach), in
 * this order: the one place for them instead of a close handler each.
 */
export function closeWith(node: Node, ...stops: (() => void)[]): void {
  node.on('close', (_removed: boolean, done: () => void) => {
    for (const stop of stops) stop();
    done();
  });
}

/**
 * A node that could not be set up: says why (log, status) and refuses every message with the
 * same error, so that Catch nodes see it.
 */
export function refuseInput(node: Node, err: NodeConfigError): void {
  node.error(err.message);
  if (err.status) node.status(err.status);
  node.on('input', (_msg, _send, done) => done(err));
}
