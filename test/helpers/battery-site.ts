/**
 * A site with the Modbus battery adapter over a real TCP connection to the simulated battery,
 * for tests on loopback: the Site dispatches straight through the adapter (autoDispatch).
 * Real time with short periods; `closeBatterySites()` (in afterEach) closes what was opened.
 */
import {
  type BatteryConfig,
  ModbusBatteries,
  type Telemetry,
} from '../../src/adapters/modbus/batteries';
import { ModbusConnection } from '../../src/adapters/modbus/connection';
import { GENERIC_MAP } from '../../src/adapters/modbus/register-map';
import { BatterySimulator } from '../../src/sim/battery';
import { Site, type SiteOptions } from '../../src/site';
import { until } from './wait';

const open: { close(): Promise<unknown> | unknown }[] = [];

/** Closes `x` with the rest (last opened, first closed). */
export function closeLater(x: { close(): Promise<unknown> | unknown }): void {
  open.push(x);
}

export async function closeBatterySites(): Promise<void> {
  for (const x of open.splice(0).reverse()) await x.close();
}

/** Waits in the one way of test/helpers/wait.ts (500 polls of 10 ms). */
export { until };

/**
 * A simulated battery (units `units`, default [1]; asset `b<unit>` each), its bus, and a
 * started site; resolves once the bus is connected.
 */
export async function batterySite(
  opts: {
    units?: number[];
    sim?: Partial<ConstructorParameters<typeof BatterySimulator>[0]>;
    batteries?: Partial<BatteryConfig>[];
    config?: Record<string, number>;
    compliance?: SiteOptions['compliance'];
    timeoutMs?: number;
  } = {},
) {
  const units = opts.units ?? [1];
  const sim = new BatterySimulator({
    unitIds: units,
    tickMs: 0,
    maxChargeKw: 50,
    maxDischargeKw: 50,
    ...opts.sim,
  });
  await sim.start();
  open.push({ close: () => sim.close() });
  const connection = new ModbusConnection({
    transport: 'tcp',
    host: '127.0.0.1',
    port: sim.port,
    timeoutMs: opts.timeoutMs ?? 200,
    reconnect: { initialMs: 30, maxMs: 100 },
  });
  const site = new Site({
    siteId: 't',
    autoDispatch: true,
    config: {
      commandTimeoutSeconds: 2,
      retryBaseSeconds: 0.1,
      maxRetries: 1,
      staleStateSeconds: 1,
      ...opts.config,
    },
    ...(opts.compliance ? { compliance: opts.compliance } : {}),
    onError: () => {},
  });
  const telemetry: Telemetry[] = [];
  const events: { type: string; assetId: string; detail?: unknown }[] = [];
  const configs: BatteryConfig[] = units.map((unitId, i) => ({
    assetId: `b${unitId}`,
    unitId,
    map: GENERIC_MAP,
    ratedChargeKw: 60,
    ratedDischargeKw: 60,
    pollIntervalMs: 100,
    ...(opts.batteries?.[i] ?? {}),
  }));
  const fleet = new ModbusBatteries(site, connection, configs, {
    onTelemetry: (t) => telemetry.push(t),
    onEvent: (e) => events.push(e),
  });
  connection.start();
  fleet.start();
  site.start();
  open.push(
    { close: () => connection.close() },
    { close: () => site.stop() },
    { close: () => fleet.stop(true) },
  );
  await until(() => connection.state === 'connected', 'connected');
  return { sim, connection, site, fleet, telemetry, events };
}
