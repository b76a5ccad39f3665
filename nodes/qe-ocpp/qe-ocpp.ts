/**
 * qe-ocpp ("OCPP chargers"): the chargers of a site on the central system of a
 * qe-ocpp-server, as one adapter (OcppChargers, src/adapters/ocpp/): commands from a
 * dispatcher go to them (output 1: the answers), their events come out of output 2, the status
 * says how many are connected, what they lack, and a deviation while it lasts.
 */
import type { Node, NodeAPI } from 'node-red';
import { type CentralSystem, type ChargerConfig, OcppChargers, summarizeChargerEvent } from '../..';
import { numberField, problemStatus, tableField, type UserDef, withSummary } from '../lib/common';
import { followDeviations, runDeliveredCommands, setUpDevice } from '../lib/device';
import { Status } from '../lib/status';
import type { OcppServerNode } from '../qe-ocpp-server/qe-ocpp-server';

interface OcppDef extends UserDef {
  server?: string;
  chargers?: ChargerConfig[] | string;
  /** Seconds without the gateway before a charger steps down to its failsafe share. */
  failsafeAfterS?: number | string;
}

/** The charger table of the dialog, checked, with numbers as numbers. */
function parseChargers(value: unknown): ChargerConfig[] | Error {
  const list = tableField(value, 'chargers', 'qe-ocpp');
  if (list instanceof Error) return list;
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
      const n = numberField(c[k]);
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
    const afterS =
      def.failsafeAfterS === undefined || def.failsafeAfterS === ''
        ? undefined
        : Number(def.failsafeAfterS);
    const status = new Status(this);
    const ready = setUpDevice<OcppServerNode, CentralSystem, ChargerConfig, OcppChargers>(
      RED,
      this,
      def,
      {
        configId: def.server,
        missing: 'pick a qe-ocpp-server (the central system)',
        live: (server) => server.central,
        notStarted: 'the central system could not start',
        items: parseChargers(def.chargers),
        empty: 'add at least one charger',
        start: (site, central, chargers) => {
          const fleet = new OcppChargers(site, central, chargers, {
            owner: this.id,
            ...(afterS === undefined ? {} : { failsafeAfterS: afterS }),
            onError: (err) => this.error(`${this.type}: ${err.message}`),
            onEvent: (e) => {
              this.send([
                null,
                withSummary({ topic: e.type, payload: e }, () => summarizeChargerEvent(e)),
              ]);
              status.refresh();
            },
          });
          fleet.start();
          return fleet;
        },
      },
    );
    if (!ready) return;
    const { site, config: server, live: central, fleet: f } = ready;
    server.setIdentities(
      this.id,
      f.chargers.map((c) => c.identity),
    );
    if (central.options.callTimeoutMs >= site.engine.config.commandTimeoutSeconds * 1000) {
      this.warn(
        `qe-ocpp: the central system's call timeout (${central.options.callTimeoutMs / 1000} s) should be below the coordinator's command timeout (${site.engine.config.commandTimeoutSeconds} s), or late answers no longer count`,
      );
    }
    const identities = [...new Set(f.chargers.map((c) => c.identity))];
    // A deviation shows while it lasts; meter values (events) refresh it.
    const deviations = followDeviations(
      site,
      f.chargers.map((c) => c.assetId),
      status.refresh,
    );
    status.render = () => {
      // The central system cannot listen: say why, until a redeploy makes it listen.
      if (central.problem) return problemStatus(RED, 'qe-ocpp', central.problem);
      const up = identities.filter((id) => central.isConnected(id)).length;
      const deviation = deviations.text();
      if (deviation) return { fill: 'yellow', shape: 'dot', text: deviation };
      // What a charger lacks (learned until it boots again), after the count.
      const lacks = f.limitations();
      return {
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
      };
    };
    status.update();
    // The listener opens after this node starts: show how that went (not once closed).
    server.ready.then(status.update, status.update);

    runDeliveredCommands(this, site, f);

    this.on('close', (removed: boolean, done: () => void) => {
      f.stop(removed);
      server.setIdentities(this.id, []);
      deviations.off();
      done();
    });
  }

  RED.nodes.registerType('qe-ocpp', QeOcpp as never);
}
