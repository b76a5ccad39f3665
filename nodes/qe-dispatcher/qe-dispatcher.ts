/**
 * qe-dispatcher: the site's dispatcher. Commands (from qe-schedule, qe-fleet, a flow) are
 * submitted to the engine; when one is due the engine hands it back (a DueCommandSink) and it
 * leaves on the output for the device nodes. `msg.reset` and `topic: cancel` cancel pending
 * ones; the status shows what is pending and when the next is due.
 */
import type { Node, NodeAPI, NodeMessageInFlow } from 'node-red';
import { type Command, commandToJSON, type DueCommandSink, summarizeCommand } from '../..';
import {
  clockTime,
  closeWith,
  setUp,
  type UserDef,
  useCoordinator,
  withSummary,
} from '../lib/common';
import { NodeInputError } from '../lib/errors';
import { Status } from '../lib/status';

interface DispatcherMsg extends NodeMessageInFlow {
  reset?: unknown;
  plan?: unknown;
}

export default function (RED: NodeAPI) {
  function QeDispatcher(this: Node, def: UserDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const found = setUp(node, () => useCoordinator(RED, node, def));
    if (!found) return;
    const { site } = found;
    const engine = site.engine;
    let last: Command | null = null;

    const sink: DueCommandSink = {
      deliver(cmd) {
        last = cmd;
        const payload = commandToJSON(cmd);
        node.send(
          withSummary({ topic: cmd.assetId, payload, commandId: cmd.id }, () =>
            summarizeCommand(payload),
          ) as never,
        );
      },
      undeliverable(cmd, error) {
        node.error(error, {
          topic: cmd.assetId,
          payload: commandToJSON(cmd),
          commandId: cmd.id,
        } as never);
      },
    };
    const detach = site.attachDispatcher(node.id, sink);

    // Status: pending count and next due time, refreshed at most every 250 ms.
    const status = new Status(node, () => {
      const stats = engine.stats();
      const next = engine.nextWakeAt();
      if (stats.pending === 0 && stats.inFlight === 0) {
        return {
          fill: 'grey',
          shape: 'ring',
          text: last
            ? RED._('qe-dispatcher.status.idle-last', { asset: last.assetId, value: last.valueKw })
            : 'qe-dispatcher.status.idle',
        };
      }
      return {
        fill: stats.held > 0 ? 'yellow' : 'blue',
        shape: 'dot',
        text: RED._('qe-dispatcher.status.pending', {
          count: stats.pending,
          inflight: stats.inFlight,
          next: next === null ? '-' : clockTime(next),
        }),
      };
    });
    const off = engine.onCommandChange(status.refresh);
    status.update();

    // A plan, or an array of commands, is read and checked in slices (the event loop stays
    // free), then registered in one step (site.submitPlanAsync, site.submitAsync); messages
    // that come meanwhile wait for it, in order (site.inOrder: the core's queue, shared by
    // the site's dispatchers).
    const closing = new AbortController();
    node.on('input', (msg: DispatcherMsg, _send, done) => {
      const reset = msg.reset !== undefined && msg.reset !== false;
      const registers = !reset && msg.topic !== 'cancel';
      if (registers && msg.plan === undefined && Array.isArray(msg.payload)) {
        site.submitAsync(msg.payload as never, { owner: node.id, signal: closing.signal }).then(
          () => done(),
          // Closed while they were read: not registered, as the node is gone.
          (err: Error) => (closing.signal.aborted ? done() : done(err)),
        );
        return;
      }
      if (registers && msg.plan !== undefined) {
        // A qe-schedule's plan: registered as columns, each command made as it falls due.
        site.submitPlanAsync(msg.plan, { owner: node.id, signal: closing.signal }).then(
          () => done(),
          (err: Error) => {
            // Closed while it was read: not registered, as the node is gone.
            if (closing.signal.aborted) done();
            else {
              const m = err.message;
              done(NodeInputError.from('qe-dispatcher', m.startsWith('plan') ? `msg.${m}` : m));
            }
          },
        );
        return;
      }
      void site.inOrder(() => handle(msg, done));
    });

    const handle = (msg: DispatcherMsg, done: (err?: Error) => void): void => {
      try {
        if (msg.reset !== undefined && msg.reset !== false) {
          const cancelled = engine.cancelPending({}, 'reset');
          node.log(RED._('qe-dispatcher.log.reset', { count: cancelled.length }));
          done();
          return;
        }
        if (msg.topic === 'cancel') {
          const p = msg.payload as { assetId?: unknown } | null;
          const assetId = p && typeof p === 'object' ? p.assetId : undefined;
          if (typeof assetId !== 'string' || assetId === '') {
            done(
              new NodeInputError(
                'qe-dispatcher',
                'a cancel message needs msg.payload = {assetId: "<asset id>"}',
              ),
            );
            return;
          }
          engine.cancelPending({ assetId }, 'cancelled by hand');
          done();
          return;
        }
        const p = msg.payload;
        if (p === null || typeof p !== 'object') {
          done(
            new NodeInputError(
              'qe-dispatcher',
              `msg.payload must be a command or an array of commands ({assetId, type, valueKw, scheduledAt?, priority?}), got ${p === null ? 'null' : typeof p}`,
            ),
          );
          return;
        }
        site.submit(p as never, node.id);
        done();
      } catch (err) {
        done(err as Error);
      }
    };

    closeWith(
      node,
      () => {
        closing.abort();
      },
      detach,
      off,
    );
  }

  RED.nodes.registerType('qe-dispatcher', QeDispatcher as never);
}
