import type { Node, NodeAPI } from 'node-red';
import { type ChargerConfig, OcppChargers, summarizeChargerEvent } from '../..';
import {
  followDeviations,
  problemStatus,
  refuseInput,
  runDeliveredCommands,
  type UserDef,
  useCoordinator,
  withSummary,
} from '../lib/common';
import type { OcppServerNode } from '../qe-ocpp-server/qe-ocpp-server';

interface OcppDef extends UserDef {
  server?: string;
  chargers?: ChargerConfig[] | string;
  /** Seconds without the gateway before a charger steps down to its failsafe share. */
  failsafeAfterS?: number | string;
}

/** The charger table of the dialog, checked, with numbers as numbers. */
function parseChargers(value: unknown): ChargerConfig[] | Error {
  let list: unknown = value;
  if (typeof value === 'string') {
    try {
      list = value.trim() === '' ? [] : JSON.parse(value);
    } catch (err) {
      return new Error(`qe-ocpp: chargers is not valid JSON: ${(err as Error).message}`);
    }
  }
  if (!Array.isArray(list)) return new Error('qe-ocpp: chargers must be a list');
  const num = (v: unknown) => (v === undefined || v === null || v === '' ? undefined : Number(v));
  const out: ChargerConfig[] = [];
  for (const [i, raw] of list.entries()) {
    const c = (raw ?? {}) as Record<string, unknown>;
    const entry: ChargerConfig = {
      identity: String(c.identity ?? '').trim(),
      assetId: String(c.assetId ?? '').trim(),
    };
    for (const k of [
      'connectorId',
      'evseId',
      'ratedKw',
      'phases',
      'voltage',
      'stackLevel',
      'profileId',
      'meterIntervalSeconds',
      'failsafeKw',
      'failsafeAfterS',
    ] as const) {
      const n = num(c[k]);
      if (n !== undefined) {
        if (!Number.isFinite(n))
          return new Error(`qe-ocpp: charger [${i}] (${entry.identity}): ${k} must be a number`);
        (entry as unknown as Record<string, number>)[k] = n;
      }
    }
    if (c.unit === 'A' || c.unit === 'W') entry.unit = c.unit;
    if (c.purpose === 'TxProfile' || c.purpose === 'TxDefaultProfile') entry.purpose = c.purpose;
    if (typeof c.idTag === 'string' && c.idTag !== '') entry.idTag = c.idTag;
    if (
      c.onDeviation === 'reapply' ||
      c.onDeviation === 'report' ||
      c.onDeviation === 'reapply-other-unit'
    )
      entry.onDeviation = c.onDeviation;
    else if (c.onDeviation !== undefined && c.onDeviation !== '')
      return new Error(
        `qe-ocpp: charger [${i}] (${entry.identity}): onDeviation must be report, reapply or reapply-other-unit`,
      );
    if (c.confirm === 'accepted' || c.confirm === 'confirmed') entry.confirm = c.confirm;
    else if (c.confirm !== undefined && c.confirm !== '')
      return new Error(
        `qe-ocpp: charger [${i}] (${entry.identity}): confirm must be accepted or confirmed`,
      );
    out.push(entry);
  }
  return out;
}

export default function (RED: NodeAPI) {
  function QeOcpp(this: Node, def: OcppDef) {
    RED.nodes.createNode(this, def);
    const found = useCoordinator(RED, this, def);
    const server = def.server ? (RED.nodes.getNode(def.server) as OcppServerNode | null) : null;
    if (server) {
      server.register(this);
      this.on('close', () => server.deregister(this));
    }
    const chargers = parseChargers(def.chargers);
    let setupError: string | null = 'error' in found ? found.error : null;
    if (!setupError && !server) setupError = 'qe-ocpp: pick a qe-ocpp-server (the central system)';
    if (!setupError && server && !server.central)
      setupError = server.failure ?? 'qe-ocpp: the central system could not start';
    if (!setupError && chargers instanceof Error) setupError = chargers.message;
    if (!setupError && Array.isArray(chargers) && chargers.length === 0)
      setupError = 'qe-ocpp: add at least one charger';
    const afterS =
      def.failsafeAfterS === undefined || def.failsafeAfterS === ''
        ? undefined
        : Number(def.failsafeAfterS);
    let fleet: OcppChargers | null = null;
    if (!setupError && !('error' in found) && server?.central && Array.isArray(chargers)) {
      try {
        fleet = new OcppChargers(found.site, server.central, chargers, {
          owner: this.id,
          ...(afterS === undefined ? {} : { failsafeAfterS: afterS }),
          onError: (err) => this.error(`${this.type}: ${err.message}`),
          onEvent: (e) => {
            this.send([
              null,
              withSummary({ topic: e.type, payload: e }, () => summarizeChargerEvent(e)),
            ]);
            refresh();
          },
        });
        fleet.start();
        server.setIdentities(
          this.id,
          chargers.map((c) => c.identity),
        );
      } catch (err) {
        setupError = `qe-ocpp: ${(err as Error).message}`;
        fleet = null;
      }
    }
    if (setupError || !fleet || 'error' in found || !server?.central) {
      const text = setupError ?? 'qe-ocpp: not configured';
      refuseInput(this, text, 'qe-ocpp.status.misconfigured');
      return;
    }
    const { site } = found;
    const central = server.central;
    if (central.options.callTimeoutMs >= site.engine.config.commandTimeoutSeconds * 1000) {
      this.warn(
        `qe-ocpp: the central system's call timeout (${central.options.callTimeoutMs / 1000} s) should be below the coordinator's command timeout (${site.engine.config.commandTimeoutSeconds} s), or late answers no longer count`,
      );
    }
    const f = fleet;
    const identities = [...new Set(f.chargers.map((c) => c.identity))];
    let statusTimer: NodeJS.Timeout | null = null;
    const showStatus = () => {
      statusTimer = null;
      // The central system cannot listen: say why, until a redeploy makes it listen.
      if (central.problem) {
        this.status(problemStatus(RED, 'qe-ocpp', central.problem));
        return;
      }
      const up = identities.filter((id) => central.isConnected(id)).length;
      const deviation = deviations.text();
      if (deviation) {
        this.status({ fill: 'yellow', shape: 'dot', text: deviation });
        return;
      }
      // What a charger lacks (learned until it boots again), after the count.
      const lacks = f.limitations();
      this.status({
        fill:
          up === identities.length
            ? lacks.length
              ? 'yellow'
              : 'green'
            : up > 0
              ? 'yellow'
              : 'red',
        shape: up > 0 ? 'dot' : 'ring',
        text: [
          RED._('qe-ocpp.status.connected', { count: up, total: identities.length }),
          ...lacks,
        ].join('; '),
      });
    };
    const refresh = () => {
      if (statusTimer === null) statusTimer = setTimeout(showStatus, 250);
    };
    // A deviation shows while it lasts; meter values (events) refresh it.
    const deviations = followDeviations(
      site,
      f.chargers.map((c) => c.assetId),
      refresh,
    );
    showStatus();
    // The listener opens after this node starts: show how that went.
    let closed = false;
    const afterListen = () => {
      if (!closed) showStatus();
    };
    server.ready.then(afterListen, afterListen);

    runDeliveredCommands(this, site, f);

    this.on('close', (removed: boolean, done: () => void) => {
      closed = true;
      f.stop(removed);
      server.setIdentities(this.id, []);
      deviations.off();
      if (statusTimer) clearTimeout(statusTimer);
      done();
    });
  }

  RED.nodes.registerType('qe-ocpp', QeOcpp as never);
}
