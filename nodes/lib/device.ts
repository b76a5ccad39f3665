/**
 * What the device nodes (qe-ocpp: chargers on a qe-ocpp-server; qe-modbus: batteries on a
 * qe-modbus-connection) share: their set-up (the coordinator, the config node that carries
 * the protocol, the device table, the adapter fleet, in that order, the first problem
 * refusing input), the commands a dispatcher delivers to them, and their deviation status.
 */
import type { Node, NodeAPI, NodeMessageInFlow } from 'node-red';
import {
  type Adapter,
  CommandStatus,
  commandToJSON,
  EventType,
  type Site,
  summarizeResult,
} from '../..';
import { setUp, type UserDef, useCoordinatorAnd, withSummary } from './common';
import type { ConfigNode } from './config-node';
import { NodeConfigError, NodeInputError } from './errors';

export interface DeviceSetUp<C extends ConfigNode, L, I, F> {
  /** The id of the config node (the node's property) and what to say when none is picked. */
  configId: string | undefined;
  missing: string;
  /** What the config node runs (the central system, the bus), or null when it could not. */
  live(config: C): L | null;
  /** What to say when it could not and the config node gives no reason. */
  notStarted: string;
  /** The device table of the dialog, parsed, or an Error naming the entry and field. */
  items: I[] | Error;
  /** What to say when the table is empty. */
  empty: string;
  /** Makes and starts the adapter fleet; an error it throws refuses input (`<type>: ...`). */
  start(site: Site, live: L, items: I[]): F;
}

/**
 * Sets up a device node: the coordinator and the config node are looked up (and registered
 * with) first, then checked in that order, then the table, then the fleet starts. Returns
 * null when the node refuses input (it has logged why and shows it).
 */
export function setUpDevice<C extends ConfigNode, L, I, F>(
  RED: NodeAPI,
  node: Node,
  def: UserDef,
  spec: DeviceSetUp<C, L, I, F>,
): { site: Site; config: C; live: L; fleet: F } | null {
  return setUp(node, () => {
    const { site, config } = useCoordinatorAnd<C>(RED, node, def, spec.configId, spec.missing);
    const live = spec.live(config);
    if (!live) throw new NodeConfigError(node.type, config.failure ?? spec.notStarted);
    if (spec.items instanceof Error) throw new NodeConfigError(node.type, spec.items.message);
    if (spec.items.length === 0) throw new NodeConfigError(node.type, spec.empty);
    return { site, config, live, fleet: spec.start(site, live, spec.items) };
  });
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
        new NodeInputError(
          node.type,
          `msg.payload must be a command from a qe-dispatcher ({id, assetId, type, valueKw, ...})`,
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
        new NodeInputError(
          node.type,
          `command ${p.id} is not known to the coordinator: send commands through a qe-dispatcher`,
        ),
      );
      return;
    }
    site.engine.runAttempt(cmd, adapter).then(
      (result) => {
        const payload = { commandId: cmd.id, ...result, command: commandToJSON(cmd) };
        msg.payload = payload;
        msg.topic = cmd.assetId;
        send([withSummary(msg, () => summarizeResult(payload)), null]);
        // A command that ended on this attempt without reaching its device: Catch nodes too.
        if (cmd.status === CommandStatus.FAILED || cmd.status === CommandStatus.TIMED_OUT) {
          done(
            new NodeInputError(
              node.type,
              `${cmd.type} ${cmd.valueKw} kW for ${cmd.assetId} ${cmd.status}: ${cmd.lastError ?? result?.error ?? 'no reason given'}`,
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
