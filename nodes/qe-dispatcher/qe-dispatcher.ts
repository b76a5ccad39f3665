import type { Node, NodeAPI, NodeMessageInFlow } from 'node-red';
import {
  type Command,
  commandToJSON,
  type DueCommandSink,
  readPlanInChunks,
  summarizeCommand,
} from '../..';
import { clockTime, refuseInput, type UserDef, useCoordinator, withSummary } from '../lib/common';

interface DispatcherMsg extends NodeMessageInFlow {
  reset?: unknown;
  plan?: unknown;
}

export default function (RED: NodeAPI) {
  function QeDispatcher(this: Node, def: UserDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const found = useCoordinator(RED, node, def);
    if ('error' in found) {
      refuseInput(node, found.error, 'qe-dispatcher.status.misconfigured');
      return;
    }
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
    let statusTimer: NodeJS.Timeout | null = null;
    const showStatus = () => {
      statusTimer = null;
      const stats = engine.stats();
      const next = engine.nextWakeAt();
      if (stats.pending === 0 && stats.inFlight === 0) {
        node.status({
          fill: 'grey',
          shape: 'ring',
          text: last
            ? RED._('qe-dispatcher.status.idle-last', { asset: last.assetId, value: last.valueKw })
            : 'qe-dispatcher.status.idle',
        });
        return;
      }
      node.status({
        fill: stats.held > 0 ? 'yellow' : 'blue',
        shape: 'dot',
        text: RED._('qe-dispatcher.status.pending', {
          count: stats.pending,
          inflight: stats.inFlight,
          next: next === null ? '-' : clockTime(next),
        }),
      });
    };
    const refresh = () => {
      if (statusTimer === null) statusTimer = setTimeout(showStatus, 250);
    };
    const off = engine.onCommandChange(refresh);
    showStatus();

    // A plan is checked in chunks (the event loop stays free): messages that come meanwhile
    // wait for it, in order.
    let pending: Promise<void> = Promise.resolve();
    let waiting = 0;
    let closed = false;
    const submitPlan = async (plan: unknown, done: (err?: Error) => void): Promise<void> => {
      try {
        const stored = await readPlanInChunks(plan, 'plan');
        if (!closed) site.submitPlan(stored, node.id);
        done();
      } catch (err) {
        done(new Error(`qe-dispatcher: msg.${(err as Error).message}`));
      }
    };
    node.on('input', (msg: DispatcherMsg, _send, done) => {
      if (waiting > 0) {
        waiting++;
        pending = pending
          .then(() => handle(msg, done))
          .finally(() => {
            waiting--;
          });
        return;
      }
      const later = handle(msg, done);
      if (later) {
        waiting++;
        pending = later.finally(() => {
          waiting--;
        });
      }
    });

    const handle = (msg: DispatcherMsg, done: (err?: Error) => void): Promise<void> | undefined => {
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
              new Error(
                'qe-dispatcher: a cancel message needs msg.payload = {assetId: "<asset id>"}',
              ),
            );
            return;
          }
          engine.cancelPending({ assetId }, 'cancelled by hand');
          done();
          return;
        }
        if (msg.plan !== undefined) {
          // A qe-schedule's plan: registered as columns, each command made as it falls due.
          return submitPlan(msg.plan, done);
        }
        const p = msg.payload;
        if (p === null || typeof p !== 'object') {
          done(
            new Error(
              `qe-dispatcher: msg.payload must be a command or an array of commands ({assetId, type, valueKw, scheduledAt?, priority?}), got ${p === null ? 'null' : typeof p}`,
            ),
          );
          return;
        }
        site.submit(p as never, node.id);
        done();
      } catch (err) {
        done(err as Error);
      }
      return undefined;
    };

    node.on('close', (_removed: boolean, done: () => void) => {
      closed = true;
      detach();
      off();
      if (statusTimer) clearTimeout(statusTimer);
      done();
    });
  }

  RED.nodes.registerType('qe-dispatcher', QeDispatcher as never);
}
