import type { Node, NodeAPI } from 'node-red';
import {
  type BatteryConfig,
  ModbusBatteries,
  resolveMap,
  summarizeResult,
  summarizeTelemetry,
} from '../..';
import {
  followDeviations,
  problemStatus,
  refuseInput,
  runDeliveredCommands,
  type UserDef,
  useCoordinator,
  withSummary,
} from '../lib/common';
import { serveModbusMaps } from '../lib/modbus-maps';
import type { ModbusConnectionNode } from '../qe-modbus-connection/qe-modbus-connection';

interface ModbusDef extends UserDef {
  connection?: string;
  batteries?: unknown[] | string;
}

/** The battery table of the dialog: numbers as numbers, the map resolved and checked. */
function parseBatteries(value: unknown): BatteryConfig[] | Error {
  let list: unknown = value;
  if (typeof value === 'string') {
    try {
      list = value.trim() === '' ? [] : JSON.parse(value);
    } catch (err) {
      return new Error(`qe-modbus: batteries is not valid JSON: ${(err as Error).message}`);
    }
  }
  if (!Array.isArray(list)) return new Error('qe-modbus: batteries must be a list');
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
    const found = useCoordinator(RED, this, def);
    const conn = def.connection
      ? (RED.nodes.getNode(def.connection) as ModbusConnectionNode | null)
      : null;
    if (conn) {
      conn.register(this);
      this.on('close', () => conn.deregister(this));
    }
    const configs = parseBatteries(def.batteries);
    let setupError: string | null = 'error' in found ? found.error : null;
    if (!setupError && !conn) setupError = 'qe-modbus: pick a qe-modbus-connection (the bus)';
    if (!setupError && conn && !conn.connection)
      setupError = conn.failure ?? 'qe-modbus: the connection could not start';
    if (!setupError && configs instanceof Error) setupError = configs.message;
    if (!setupError && Array.isArray(configs) && configs.length === 0)
      setupError = 'qe-modbus: add at least one battery';
    let fleet: ModbusBatteries | null = null;
    let refreshStatus = () => {};
    if (!setupError && !('error' in found) && conn?.connection && Array.isArray(configs)) {
      try {
        fleet = new ModbusBatteries(found.site, conn.connection, configs, {
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
            if (e.type.startsWith('revert-timer')) refreshStatus();
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
      } catch (err) {
        setupError = `qe-modbus: ${(err as Error).message}`;
        fleet = null;
      }
    }
    if (setupError || !fleet || 'error' in found || !conn?.connection) {
      const text = setupError ?? 'qe-modbus: not configured';
      refuseInput(this, text, 'qe-modbus.status.misconfigured');
      return;
    }
    const { site } = found;
    const connection = conn.connection;
    const f = fleet;
    const showStatus = () => {
      const s = connection.state;
      // The bus cannot open: say why, through the reconnect attempts, until one succeeds.
      if (connection.problem && (s === 'connecting' || s === 'disconnected')) {
        this.status(problemStatus(RED, 'qe-modbus', connection.problem));
        return;
      }
      const deviation = s === 'connected' ? deviations.text() : null;
      if (deviation) {
        this.status({ fill: 'yellow', shape: 'dot', text: deviation });
        return;
      }
      // The failsafe is not armed: the device would not revert by itself.
      const unarmed = s === 'connected' ? f.revertProblems() : [];
      if (unarmed.length > 0) {
        this.status({
          fill: 'yellow',
          shape: 'dot',
          text: RED._('qe-modbus.status.revertFailed', {
            assets: unarmed.map((p) => p.assetId).join(', '),
          }),
        });
        return;
      }
      this.status({
        fill: s === 'connected' ? 'green' : s === 'connecting' ? 'yellow' : 'red',
        shape: s === 'connected' ? 'dot' : 'ring',
        text: RED._(`qe-modbus.status.${s}`, { depth: connection.queueDepth }),
      });
    };
    let queueTimer: NodeJS.Timeout | null = null;
    const onQueue = () => {
      if (queueTimer === null) {
        queueTimer = setTimeout(() => {
          queueTimer = null;
          showStatus();
        }, 250);
      }
    };
    // A deviation shows while it lasts (it may also end silently: its setpoint ended).
    const deviations = followDeviations(site, f.assets, onQueue);
    connection.on('state', showStatus);
    connection.on('queue', onQueue);
    refreshStatus = showStatus;
    showStatus();

    runDeliveredCommands(this, site, f);

    this.on('close', (removed: boolean, done: () => void) => {
      f.stop(removed);
      connection.off('state', showStatus);
      connection.off('queue', onQueue);
      deviations.off();
      if (queueTimer) clearTimeout(queueTimer);
      done();
    });
  }

  RED.nodes.registerType('qe-modbus', QeModbus as never);
  // The maps and their validator for the edit dialog (nodes/lib/modbus-maps.ts).
  serveModbusMaps(RED);
}
