import type { Node, NodeAPI, NodeMessageInFlow } from 'node-red';
import { commandToJSON, convertSchedule, EventType } from '../..';
import { parseJsonObject, type UserDef, useCoordinator } from '../lib/common';

interface ScheduleDef extends UserDef {
  assetMap?: string;
  ratedKw?: string;
  timeZone?: string;
  ignoreUnmapped?: boolean;
}

interface ScheduleMsg extends NodeMessageInFlow {
  assetMap?: unknown;
  scheduleId?: unknown;
  schedule?: unknown;
}

export default function (RED: NodeAPI) {
  function QeSchedule(this: Node, def: ScheduleDef) {
    RED.nodes.createNode(this, def);
    const found = useCoordinator(RED, this, def);
    const assetMap = parseJsonObject(def.assetMap, 'assetMap', 'qe-schedule');
    const ratedKw = parseJsonObject(def.ratedKw, 'ratedKw', 'qe-schedule');
    const setupError =
      'error' in found
        ? found.error
        : assetMap instanceof Error
          ? assetMap.message
          : ratedKw instanceof Error
            ? ratedKw.message
            : null;
    this.status(
      setupError
        ? { fill: 'red', shape: 'ring', text: 'qe-schedule.status.misconfigured' }
        : { fill: 'grey', shape: 'ring', text: 'qe-schedule.status.waiting' },
    );

    this.on('input', (msg: ScheduleMsg, send, done) => {
      if (setupError || 'error' in found) {
        done(new Error(setupError ?? 'qe-schedule: no coordinator'));
        return;
      }
      const { site } = found;
      let map = assetMap as Record<string, string>;
      if (msg.assetMap !== undefined) {
        const m = parseJsonObject(msg.assetMap, 'msg.assetMap', 'qe-schedule');
        if (m instanceof Error) {
          done(m);
          return;
        }
        map = m as Record<string, string>;
      }
      const requested =
        typeof msg.scheduleId === 'string' || typeof msg.scheduleId === 'number'
          ? String(msg.scheduleId)
          : undefined;
      const engine = site.engine;
      const convert = (scheduleId: string | undefined) =>
        convertSchedule(msg.payload, {
          assetMap: map,
          ratedKw: ratedKw as Record<string, number>,
          ignoreUnmapped: def.ignoreUnmapped === true,
          timeZone: def.timeZone?.trim() || 'UTC',
          deadbandKw: engine.config.deadbandKw,
          horizonEnd: engine.config.horizonEnd,
          maxRetries: engine.config.maxRetries,
          timeoutSeconds: engine.config.commandTimeoutSeconds,
          ...(scheduleId === undefined ? {} : { scheduleId }),
          now: site.clock.now(),
        });
      let conversion: ReturnType<typeof convertSchedule>;
      try {
        conversion = convert(
          requested === undefined ? undefined : engine.uniqueScheduleId(requested),
        );
        // An id carried inside the payload ({schedule, scheduleId}) that is already in use:
        // the schedule was sent again, so it becomes the next revision, as msg.scheduleId does.
        const unique = engine.uniqueScheduleId(conversion.scheduleId);
        if (requested === undefined && unique !== conversion.scheduleId)
          conversion = convert(unique);
      } catch (err) {
        this.status({ fill: 'red', shape: 'dot', text: 'qe-schedule.status.rejected' });
        done(err as Error);
        return;
      }
      engine.reserveScheduleId(conversion.scheduleId);
      site.eventBus.publish(EventType.SCHEDULE_RECEIVED, conversion.summary);
      msg.payload = conversion.commands.map(commandToJSON);
      msg.schedule = conversion.summary;
      this.status({
        fill: 'green',
        shape: 'dot',
        text: RED._('qe-schedule.status.converted', { count: conversion.commands.length }),
      });
      send(msg);
      done();
    });
  }

  RED.nodes.registerType('qe-schedule', QeSchedule as never);
}
