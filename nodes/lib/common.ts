/**
 * What the node files share: the coordinator node's shape, finding it from a user node,
 * and parsing of editor fields. Node files stay thin: the logic is in the core library.
 */
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow, NodeStatus } from 'node-red';
import {
  type Adapter,
  CommandStatus,
  type ConvertOptions,
  commandToJSON,
  EventType,
  type NetProblem,
  type Site,
} from '../..';

export interface CoordinatorNode extends Node {
  site: Site | null;
  /** Why the site could not be made, if it could not. */
  failure: string | null;
  /** User nodes, by id: the runtime forwards this node's status and errors to their flows. */
  users: Record<string, Node>;
  register(user: Node): void;
  deregister(user: Node): void;
}

export interface UserDef extends NodeDef {
  coordinator?: string;
}

/**
 * The site of the coordinator a node points at, registering the node as a user of it.
 * Returns an error text (an i18n key's text) when there is none.
 */
export function useCoordinator(
  RED: NodeAPI,
  node: Node,
  def: UserDef,
): { coordinator: CoordinatorNode; site: Site } | { error: string } {
  const coordinator = def.coordinator
    ? (RED.nodes.getNode(def.coordinator) as CoordinatorNode | null)
    : null;
  // Plain text: RED._ only reaches the calling node's own catalog, not the coordinator's.
  if (!coordinator) {
    return {
      error: `${node.type}: no coordinator: pick a qe-coordinator (the site) in this node's properties`,
    };
  }
  coordinator.register(node);
  node.on('close', () => coordinator.deregister(node));
  if (!coordinator.site) {
    return { error: coordinator.failure ?? `${node.type}: the coordinator could not start` };
  }
  return { coordinator, site: coordinator.site };
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

/** A number field of the edit dialog (strings in flows), or undefined when empty. */
export function numberField(value: unknown): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const n = typeof value === 'number' ? value : Number(value);
  return Number.isFinite(n) ? n : Number.NaN;
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
 * A node that could not be set up: says why (log, status) and refuses every message with the
 * same error, so that Catch nodes see it.
 */
export function refuseInput(node: Node, text: string, statusKey: string): void {
  node.error(text);
  node.status({ fill: 'red', shape: 'ring', text: statusKey });
  node.on('input', (_msg, _send, done) => done(new Error(text)));
}

/**
 * The input of a device node (OCPP chargers, Modbus battery) behind a dispatcher: a command
 * for an asset the adapter serves is run through it by the engine (`runAttempt`), and its
 * answer goes out on output 1 as `{commandId, success, error?, final?, command}`; commands for
 * other assets are passed over.
 */
export function runDeliveredCommands(
  node: Node,
  site: Site,
  adapter: Adapter & { serves(assetId: string): boolean },
): void {
  node.on('input', (msg: NodeMessageInFlow, send, done) => {
    const p = msg.payload as { id?: unknown; assetId?: unknown } | null;
    if (!p || typeof p !== 'object' || typeof p.id !== 'string' || typeof p.assetId !== 'string') {
      done(
        new Error(
          `${node.type}: msg.payload must be a command from a qe-dispatcher ({id, assetId, type, valueKw, ...})`,
        ),
      );
      return;
    }
    // One dispatcher can feed several adapters: pass over what this node does not serve.
    if (!adapter.serves(p.assetId)) {
      done();
      return;
    }
    const cmd = site.engine.getCommand(p.id);
    if (!cmd) {
      done(
        new Error(
          `${node.type}: command ${p.id} is not known to the coordinator: send commands through a qe-dispatcher`,
        ),
      );
      return;
    }
    site.engine.runAttempt(cmd, adapter).then(
      (result) => {
        msg.payload = { commandId: cmd.id, ...result, command: commandToJSON(cmd) };
        msg.topic = cmd.assetId;
        send([msg, null]);
        // A command that ended on this attempt without reaching its device: Catch nodes too.
        if (cmd.status === CommandStatus.FAILED || cmd.status === CommandStatus.TIMED_OUT) {
          done(
            new Error(
              `${node.type}: ${cmd.type} ${cmd.valueKw} kW for ${cmd.assetId} ${cmd.status}: ${cmd.lastError ?? result?.error ?? 'no reason given'}`,
            ),
          );
          return;
        }
        done();
      },
      (err: Error) => done(err),
    );
  });
}

/**
 * The deviation to show in a device node's status while it lasts ("b1: 11 kW > 7.4 kW
 * limit", "+N more" when several assets deviate), or null. Calls `refresh` on every
 * compliance event of the site (for any asset: cheap); returns the unsubscribe function.
 */
export function followDeviations(
  site: Site,
  assetIds: readonly string[],
  refresh: () => void,
): { text: () => string | null; off: () => void } {
  const offs = [
    site.eventBus.subscribe(EventType.ASSET_DEVIATION, refresh),
    site.eventBus.subscribe(EventType.ASSET_COMPLIANT, refresh),
  ];
  const text = () => {
    const open = assetIds.flatMap((a) => {
      const d = site.compliance.deviationOf(a);
      return d ? [`${a}: ${d.reason}`] : [];
    });
    if (open.length === 0) return null;
    return open.length === 1 ? (open[0] as string) : `${open[0]} (+${open.length - 1} more)`;
  };
  return {
    text,
    off: () => {
      for (const f of offs) f();
    },
  };
}
