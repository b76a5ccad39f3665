/**
 * qe-adapter ("custom adapter"): an adapter made of wires, for protocols without a node of
 * their own. Commands for the assets it serves pass through to the flow (with msg.commandId);
 * the flow's answers `{commandId, success, ...}` come back on its input to the engine. The
 * status counts the assets and the commands awaiting an answer.
 */
import type { Node, NodeAPI, NodeMessageInFlow } from 'node-red';
import type { Adapter } from '../..';
import { closeWith, listField, setUp, type UserDef, useCoordinator } from '../lib/common';
import { NodeConfigError, NodeInputError } from '../lib/errors';
import { Status } from '../lib/status';

interface AdapterDef extends UserDef {
  assets?: string | string[];
  protocol?: string;
}

interface AdapterMsg extends NodeMessageInFlow {
  commandId?: unknown;
}

interface Result {
  commandId: string;
  success: boolean;
  error?: unknown;
  final?: unknown;
  completed?: unknown;
}

/** A result `{commandId, success, ...}` in msg.payload (or with msg.commandId), or null. */
function asResult(msg: AdapterMsg): Result | null | NodeInputError {
  const p = msg.payload as Record<string, unknown> | null;
  if (!p || typeof p !== 'object' || Array.isArray(p)) return null;
  const commandId = p.commandId ?? (typeof p.success === 'boolean' ? msg.commandId : undefined);
  if (commandId === undefined) return null;
  if (typeof commandId !== 'string' || commandId === '') {
    return new NodeInputError(
      'qe-adapter',
      `result commandId must be a non-empty string, got ${JSON.stringify(commandId)}`,
    );
  }
  if (typeof p.success !== 'boolean') {
    return new NodeInputError(
      'qe-adapter',
      `result for command ${commandId}: success must be true or false, got ${JSON.stringify(p.success)}`,
    );
  }
  return { ...p, commandId, success: p.success } as Result;
}

/** An error as text: a string, an Error's message, or an object as JSON. */
function errorText(e: unknown): string | null {
  if (e === undefined || e === null || e === '') return null;
  if (typeof e === 'string') return e;
  if (e instanceof Error) return e.message;
  if (typeof e === 'object') {
    const m = (e as { message?: unknown }).message;
    if (typeof m === 'string') return m;
    try {
      return JSON.stringify(e);
    } catch {
      return String(e);
    }
  }
  return String(e);
}

export default function (RED: NodeAPI) {
  function QeAdapter(this: Node, def: AdapterDef) {
    RED.nodes.createNode(this, def);
    const assets = listField(def.assets);
    const adapter: Adapter = {
      protocol: (def.protocol ?? '').trim() || 'custom',
      // The command travels by wire: its answer comes back on this node's input.
      dispatch: () => undefined,
    };
    const found = setUp(this, () => {
      const { site } = useCoordinator(RED, this, def);
      if (assets.length === 0) {
        throw new NodeConfigError('qe-adapter', 'list the asset ids this adapter serves');
      }
      const registered: string[] = [];
      try {
        for (const a of assets) {
          site.adapterRegistry.register(a, adapter);
          registered.push(a);
        }
      } catch (err) {
        // All or nothing: a half-registered adapter would serve some of its assets silently.
        for (const a of registered) site.adapterRegistry.unregister(a, adapter);
        throw err;
      }
      return { site, registered };
    });
    if (!found) return;
    const { site, registered } = found;
    const engine = site.engine;

    // Status: assets served and commands awaiting an answer, refreshed at most every 250 ms.
    const status = new Status(this, () => {
      let inFlight = 0;
      for (const assetId of registered) {
        // (Not getActiveCommands: that would make every planned row of the asset.)
        inFlight += engine.getInFlightCommands(assetId).length;
      }
      return {
        fill: inFlight > 0 ? 'blue' : 'green',
        shape: 'dot',
        text: RED._('qe-adapter.status.serving', { count: registered.length, inflight: inFlight }),
      };
    });
    const mine = new Set(registered);
    const off = engine.onCommandChange((c) => {
      if (mine.has(c.assetId)) status.refresh();
    });
    status.update();

    this.on('input', (msg: AdapterMsg, send, done) => {
      const result = asResult(msg);
      if (result instanceof NodeInputError) {
        done(result);
        return;
      }
      if (result) {
        const cmd = engine.getCommand(result.commandId);
        const applied = engine.handleResponse(
          result.commandId,
          result.success,
          errorText(result.error),
          {
            final: result.final === true,
            ...(result.completed === false ? { completed: false } : {}),
          },
        );
        if (!applied) {
          this.warn(
            `qe-adapter: result for command ${result.commandId} ignored: ${cmd ? `it is ${cmd.status}, not awaiting an answer` : 'unknown command'}`,
          );
        }
        done();
        return;
      }
      const p = msg.payload as { id?: unknown; assetId?: unknown } | null;
      if (p && typeof p === 'object' && typeof p.id === 'string' && typeof p.assetId === 'string') {
        // One dispatcher can feed several adapters: pass over what another one serves.
        if (site.adapterRegistry.get(p.assetId) !== adapter) {
          done();
          return;
        }
        msg.commandId = p.id;
        send(msg);
        done();
        return;
      }
      done(
        new NodeInputError(
          'qe-adapter',
          'msg.payload must be a command from a dispatcher ({id, assetId, type, valueKw, ...}) or a result ({commandId, success, error?, final?})',
        ),
      );
    });
    closeWith(
      this,
      () => {
        for (const a of registered) site.adapterRegistry.unregister(a, adapter);
      },
      off,
    );
  }

  RED.nodes.registerType('qe-adapter', QeAdapter as never);
}
