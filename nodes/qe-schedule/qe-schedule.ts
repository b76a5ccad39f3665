/**
 * qe-schedule ("schedule to commands"): an optimiser's schedule in msg.payload (JSON, CSV,
 * columns) converted by the core in slices (`site.receiveScheduleAsync`, one schedule at a
 * time) into its columnar plan on msg.plan (and the commands' JSON on msg.payload while they
 * are few), for a qe-dispatcher; the status says how many, or that it was rejected.
 */
import type { Node, NodeAPI, NodeMessageInFlow } from 'node-red';
import type { Conversion } from '../..';
import {
  parseJsonObject,
  type ScheduleFields,
  scheduleMessage,
  scheduleOptions,
  setUp,
  type UserDef,
  useCoordinator,
} from '../lib/common';
import { NodeConfigError, NodeInputError } from '../lib/errors';

interface ScheduleDef extends UserDef, ScheduleFields {}

interface ScheduleMsg extends NodeMessageInFlow {
  assetMap?: unknown;
  scheduleId?: unknown;
  schedule?: unknown;
  limits?: unknown;
  plan?: unknown;
}

export default function (RED: NodeAPI) {
  function QeSchedule(this: Node, def: ScheduleDef) {
    RED.nodes.createNode(this, def);
    const found = setUp(this, () => {
      const { site } = useCoordinator(RED, this, def);
      const options = scheduleOptions(def, 'qe-schedule');
      if (options instanceof Error) throw new NodeConfigError('qe-schedule', options.message);
      return { site, options };
    });
    if (!found) return;
    const { site, options } = found;
    this.status({ fill: 'grey', shape: 'ring', text: 'qe-schedule.status.waiting' });

    // One schedule at a time, in the order they came: the next is converted when the one
    // before has been sent (or rejected). The conversion runs in slices of a few ms
    // (receiveScheduleAsync), so a schedule of 10,000 assets does not hold the event loop.
    let queue: Promise<void> = Promise.resolve();
    let closed = false;
    type Send = (msg: NodeMessageInFlow) => void;
    type Done = (err?: Error) => void;

    const handle = async (msg: ScheduleMsg, send: Send, done: Done): Promise<void> => {
      if (closed) {
        done(
          new NodeInputError(
            'qe-schedule',
            'qe-schedule: closed before this schedule was converted; nothing changed',
          ),
        );
        return;
      }
      let map = options.assetMap;
      if (msg.assetMap !== undefined) {
        const m = parseJsonObject(msg.assetMap, 'msg.assetMap', 'qe-schedule');
        if (m instanceof Error) {
          done(new NodeInputError('qe-schedule', m.message));
          return;
        }
        map = m as Record<string, string>;
      }
      const requested =
        typeof msg.scheduleId === 'string' || typeof msg.scheduleId === 'number'
          ? String(msg.scheduleId)
          : undefined;
      let conversion: Conversion;
      try {
        // The core picks the id (a re-sent one is the next revision) and publishes
        // SCHEDULE_RECEIVED; the dispatcher registers the commands when they reach it.
        conversion = await site.receiveScheduleAsync(msg.payload, {
          ...options,
          assetMap: map,
          ...(requested === undefined ? {} : { scheduleId: requested }),
        });
      } catch (err) {
        this.status({ fill: 'red', shape: 'dot', text: 'qe-schedule.status.rejected' });
        done(err as Error);
        return;
      }
      // The dispatcher registers msg.plan; commands are made as they fall due.
      const count = conversion.changes.count;
      Object.assign(msg, await scheduleMessage(conversion, options));
      this.status({
        fill: 'green',
        shape: 'dot',
        text: RED._('qe-schedule.status.converted', { count }),
      });
      send(msg);
      done();
    };

    this.on('input', (msg: ScheduleMsg, send, done) => {
      queue = queue.then(() =>
        handle(msg, send as Send, done).catch((err: unknown) => done(err as Error)),
      );
    });

    // A redeploy waits for the schedule being converted (rejected if the site stopped
    // meanwhile); those queued behind it are rejected.
    this.on('close', (doneClosing: () => void) => {
      closed = true;
      void queue.then(doneClosing);
    });
  }

  RED.nodes.registerType('qe-schedule', QeSchedule as never);
}
