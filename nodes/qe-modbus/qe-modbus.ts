/**
 * qe-modbus ("Modbus battery"): the batteries of a site on the bus of a qe-modbus-connection,
 * as one adapter (ModbusBatteries, src/adapters/modbus/): commands from a dispatcher are
 * written to them (output 1: the answers and re-writes), their telemetry comes out of output
 * 2, the status says the bus state, an unarmed failsafe and a deviation while it lasts.
 */
import type { Node, NodeAPI } from 'node-red';
import {
  type BatteryConfig,
  ModbusBatteries,
  type ModbusConnection,
  resolveMap,
  summarizeResult,
  summarizeTelemetry,
} from '../..';
import { problemStatus, tableField, type UserDef, withSummary } from '../lib/common';
import { followDeviations, runDeliveredCommands, setUpDevice } from '../lib/device';
import { serveModbusMaps } from '../lib/modbus-maps';
import { Status } from '../lib/status';
import type { ModbusConnectionNode } from '../qe-modbus-connection/qe-modbus-connection';

interface ModbusDef extends UserDef {
  connection?: string;
  batteries?: unknown[] | string;
}

/** The battery table of the dialog: numbers as numbers, the map resolved and checked. */
function parseBatteries(value: unknown): BatteryConfig[] | Error {
  const list = tableField(value, 'batteries', 'qe-modbus');
  if (list instanceof Error) return list;
  const out: BatteryConfig[] = [];
  for (const [i, raw] of list.entries()) {
    const b = (raw ?? {}) as Record<string, unknown>;
    const where = `qe-modbus: battery [${i}]${b.assetId ? ` (${String(b.assetId)})` : ''}`;
    let map: unknown = b.profile ?? 'generic';
    if (typeof map === 'string' && map.trim().startsWith('{')) {
      try {
        map = JSON.parse(map);
      } catch (err) {
        return new Error(`${where}: the register map is not valid JSON: ${(err as Error).message}`);
      }
    }
    if (typeof map === 'string' && b.baseAddress !== undefined && b.baseAddress !== '') {
      map = { profile: map, baseAddress: Number(b.baseAddress) };
    }
    let resolved: BatteryConfig['map'];
    try {
      resolved = resolveMap(map as never);
    } catch (err) {
      return new Error(`${where}: ${(err as Error).message}`);
    }
    const num = (k: string, d?: number) => (b[k] === undefined || b[k] === '' ? d : Number(b[k]));
    const entry: BatteryConfig = {
      assetId: String(b.assetId ?? '').trim(),
      unitId: num('unitId', 1) as number,
      map: resolved,
      ratedChargeKw: num('ratedChargeKw') as number,
      ratedDischargeKw: num('ratedDischargeKw') as number,
      pollIntervalMs: (num('pollSeconds', 5) as number) * 1000,
    };
    // Empty: the adapter's default (revertSeconds / 3 with a revert time, else none).
    const watchdog = num('watchdogSeconds');
    const revert = num('revertSeconds');
    if (watchdog !== undefined) entry.watchdogSeconds = watchdog;
    if (revert !== undefined) entry.revertSeconds = revert;
    const socMin = num('socMinPercent');
    const socMax = num('socMaxPercent');
    if (socMin !== undefined) entry.socMinPercent = socMin;
    if (socMax !== undefined) entry.socMaxPercent = socMax;
    if (b.onDeviation === 'reapply' || b.onDeviation === 'report')
      entry.onDeviation = b.onDeviation;
    else if (b.onDeviation !== undefined && b.onDeviation !== '')
      return new Error(`${where}: onDeviation must be report or reapply`);
    out.push(entry);
  }
  return out;
}

export default function (RED: NodeAPI) {
  function QeModbus(this: Node, def: ModbusDef) {
    RED.nodes.createNode(this, def);
    const status = new Status(this);
    const ready = setUpDevice<
      ModbusConnectionNode,
      ModbusConnection,
      BatteryConfig,
      ModbusBatteries
    >(RED, this, def, {
      configId: def.connection,
      missing: 'pick a qe-modbus-connection (the bus)',
      live: (conn) => conn.connection,
      notStarted: 'the connection could not start',
      items: parseBatteries(def.batteries),
      empty: 'add at least one battery',
      start: (site, connection, configs) => {
        const fleet = new ModbusBatteries(site, connection, configs, {
          owner: this.id,
          onTelemetry: (t) =>
            this.send([
              null,
              withSummary({ topic: t.assetId, payload: t }, () => summarizeTelemetry(t)),
            ]),
          onError: (err) => this.error(`${this.type}: ${err.message}`),
          onEvent: (e) => {
            if (e.type === 'revert-timer-failed')
              this.warn(`qe-modbus: ${e.assetId}: ${String(e.detail)}`);
            else if (e.type.endsWith('failed'))
              this.debug?.(`qe-modbus: ${e.assetId}: ${e.type}: ${String(e.detail)}`);
            if (e.type.startsWith('revert-timer')) status.update();
            if (e.type.endsWith('rewrite')) {
              const payload = { rewrite: e.type, ...(e.detail as object) };
              this.send([
                withSummary({ topic: e.assetId, payload }, () =>
                  summarizeResult({ ...payload, assetId: e.assetId }),
                ),
                null,
              ]);
            }
          },
        });
        fleet.start();
        return fleet;
      },
    });
    if (!ready) return;
    const { site, live: connection, fleet: f } = ready;
    // A deviation shows while it lasts (it may also end silently: its setpoint ended).
    const deviations = followDeviations(site, f.assets, status.refresh);
    status.render = () => {
      const s = connection.state;
      // The bus cannot open: say why, through the reconnect attempts, until one succeeds.
      if (connection.problem && (s === 'connecting' || s === 'disconnected')) {
        return problemStatus(RED, 'qe-modbus', connection.problem);
      }
      const deviation = s === 'connected' ? deviations.text() : null;
      if (deviation) return { fill: 'yellow', shape: 'dot', text: deviation };
      // The failsafe is not armed: the device would not revert by itself.
      const unarmed = s === 'connected' ? f.revertProblems() : [];
      if (unarmed.length > 0) {
        return {
          fill: 'yellow',
          shape: 'dot',
          text: RED._('qe-modbus.status.revertFailed', {
            assets: unarmed.map((p) => p.assetId).join(', '),
          }),
        };
      }
      return {
        fill: s === 'connected' ? 'green' : s === 'connecting' ? 'yellow' : 'red',
        shape: s === 'connected' ? 'dot' : 'ring',
        text: RED._(`qe-modbus.status.${s}`, { depth: connection.queueDepth }),
      };
    };
    connection.on('state', status.update);
    connection.on('queue', status.refresh);
    status.update();

    runDeliveredCommands(this, site, f);

    this.on('close', (removed: boolean, done: () => void) => {
      f.stop(removed);
      connection.off('state', status.update);
      connection.off('queue', status.refresh);
      deviations.off();
      done();
    });
  }

  RED.nodes.registerType('qe-modbus', QeModbus as never);
  // The maps and their validator for the edit dialog (nodes/lib/modbus-maps.ts).
  serveModbusMaps(RED);
}
