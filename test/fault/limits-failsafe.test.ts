/**
 * Site limits end to end (issue 14): Node-RED as a real process with a 50 kW connection, ten
 * simulated 11 kW chargers (OCPP 1.6 and 2.0.1) scheduled at full power, a simulated battery
 * charging at 10 kW (Modbus), and a building meter rising 0 -> 30 kW, fed over HTTP. Sampled
 * every 100 ms, the chargers' own limits (what their profiles allow: `limitAt`) plus the
 * battery's setpoint plus the load stay within 50 kW: against the load before a reading while
 * its decreases are on their way (a rising load is the one moment the devices are late),
 * against the new load once they are done, and against a falling load at once. Then the load
 * falls to 0, the chargers rise (paced), Node-RED is killed -9, and within the failsafe time
 * the chargers' own limits step down to their failsafe shares (20 kW left after the
 * building's 30 kW worst case: four at 5 kW), and the battery reverts to 0 on its watchdog.
 */
import should from 'should';
import { BatterySimulator } from '../../src/sim/battery';
import { ChargePointSimulator } from '../../src/sim/charge-point';
import { freePort, NodeRedProcess } from '../helpers/node-red-process';

const EVS = Array.from({ length: 10 }, (_, i) => String(i + 1).padStart(2, '0'));
const FAILSAFE_AFTER_S = 3;
const LIMIT_KW = 50;
const EPS = 1e-6;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function limits() {
  return {
    circuits: [{ id: 'grid', importKw: LIMIT_KW }],
    assets: [
      ...EVS.map((n) => ({
        assetId: `ev${n}`,
        kind: 'ev',
        circuit: 'grid',
        phases: 'L1L2L3',
        ratingKw: 11,
        minA: 6,
      })),
      // Served before the chargers; it reverts to 0 by itself when the gateway is gone: no
      // share of the failsafe.
      {
        assetId: 'bess',
        kind: 'battery',
        circuit: 'grid',
        phases: 'L1L2L3',
        ratingKw: 30,
        priority: 1,
        failsafeKw: 0,
      },
    ],
    meters: [{ id: 'building', circuit: 'grid', staleAfterS: 120, worstCaseKw: 30 }],
    minIntervalS: 1,
    hysteresisKw: 0.1,
  };
}

function flows(ocppPort: number, modbusPort: number): unknown[] {
  return [
    { id: 'tab', type: 'tab', label: 'site limits' },
    {
      id: 'coord',
      type: 'qe-coordinator',
      siteId: 'depot',
      commandTimeoutSeconds: 5,
      maxRetries: 3,
      retryBackoffFactor: 2,
      retryBaseSeconds: 0.5,
      retryMaxSeconds: 2,
      staleStateSeconds: 60,
      dispatchIntervalSeconds: 1,
      deadbandKw: 0.001,
      horizonEnd: 'hold',
      fallbackKw: '{}',
      limits: JSON.stringify(limits()),
      persist: false,
    },
    {
      id: 'central',
      type: 'qe-ocpp-server',
      mode: 'port',
      host: '127.0.0.1',
      port: ocppPort,
      path: '/ocpp',
      protocols: 'both',
      security: 'none',
      allowUnknown: false,
      heartbeatSeconds: 300,
      callTimeoutSeconds: 3,
      maxBadMessages: 5,
      authorize: 'accept',
    },
    {
      id: 'bus',
      type: 'qe-modbus-connection',
      transport: 'tcp',
      host: '127.0.0.1',
      port: modbusPort,
      timeoutMs: 1000,
      queueLimit: 200,
    },
    { id: 'in', type: 'http in', z: 'tab', url: '/schedule', method: 'post', wires: [['sched']] },
    {
      id: 'sched',
      type: 'qe-schedule',
      z: 'tab',
      coordinator: 'coord',
      assetMap: JSON.stringify({
        ...Object.fromEntries(EVS.map((n) => [`v${n}`, `ev${n}`])),
        battery: 'bess',
      }),
      ratedKw: '{}',
      timeZone: 'UTC',
      ignoreUnmapped: false,
      wires: [['disp', 'reply']],
    },
    { id: 'reply', type: 'http response', z: 'tab', statusCode: '202', wires: [] },
    {
      id: 'meter-in',
      type: 'http in',
      z: 'tab',
      url: '/meter',
      method: 'post',
      wires: [['meter']],
    },
    {
      id: 'meter',
      type: 'qe-meter',
      z: 'tab',
      coordinator: 'coord',
      meter: 'building',
      wires: [['meter-reply']],
    },
    { id: 'meter-reply', type: 'http response', z: 'tab', statusCode: '200', wires: [] },
    {
      id: 'disp',
      type: 'qe-dispatcher',
      z: 'tab',
      coordinator: 'coord',
      wires: [['ocpp', 'modbus']],
    },
    {
      id: 'ocpp',
      type: 'qe-ocpp',
      z: 'tab',
      coordinator: 'coord',
      server: 'central',
      failsafeAfterS: FAILSAFE_AFTER_S,
      chargers: EVS.map((n, i) => ({
        identity: `CP${n}`,
        assetId: `ev${n}`,
        ratedKw: 11,
        ...(i % 2 === 0 ? { connectorId: 1 } : { evseId: 1 }),
        unit: 'W',
      })),
      wires: [[], []],
    },
    {
      id: 'modbus',
      type: 'qe-modbus',
      z: 'tab',
      coordinator: 'coord',
      connection: 'bus',
      batteries: [
        {
          assetId: 'bess',
          unitId: 1,
          profile: 'generic',
          ratedChargeKw: 30,
          ratedDischargeKw: 30,
          pollSeconds: 1,
          revertSeconds: FAILSAFE_AFTER_S,
        },
      ],
      wires: [[], []],
    },
  ];
}

async function post(base: string, url: string, body: unknown): Promise<number> {
  const res = await fetch(`${base}${url}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  await res.text();
  return res.status;
}

describe('site limits end to end: a 50 kW depot in Node-RED, then Node-RED killed', function () {
  this.timeout(150_000);
  let red: NodeRedProcess | null = null;
  const chargers: ChargePointSimulator[] = [];
  let battery: BatterySimulator | null = null;

  after(async () => {
    await Promise.all(chargers.map((c) => c.stop().catch(() => {})));
    await battery?.close();
    await red?.dispose();
  });

  it('keeps chargers + battery + building within 50 kW at every reading, and the chargers within their failsafe shares once Node-RED is gone', async () => {
    const ocppPort = await freePort();
    const modbusPort = await freePort();
    battery = new BatterySimulator({
      port: modbusPort,
      unitIds: [1],
      tickMs: 0,
      watchdogTimeoutMs: FAILSAFE_AFTER_S * 1000,
    });
    await battery.start();
    const bess = battery;
    red = new NodeRedProcess({ flows: flows(ocppPort, modbusPort) });
    const nodeRed = red;
    await nodeRed.start();
    for (const [i, n] of EVS.entries()) {
      const cp = new ChargePointSimulator({
        endpoint: `ws://127.0.0.1:${ocppPort}/ocpp`,
        identity: `CP${n}`,
        protocol: i % 2 === 0 ? 'ocpp1.6' : 'ocpp2.0.1',
        evMaxKw: 11,
        phases: 3,
        meterIntervalMs: 0,
        backoff: { initialDelay: 200, maxDelay: 1000, factor: 2, randomisationFactor: 0 },
      });
      cp.on('warning', () => {});
      chargers.push(cp);
    }
    await Promise.all(chargers.map((c) => c.start()));

    /** What the chargers' own profiles allow now, kW (no profile: their 11 kW). */
    const chargersKw = () =>
      chargers.reduce((t, c) => t + Math.min(c.limitAt(Date.now()) ?? 11_000, 11_000) / 1000, 0);
    const batteryKw = () => Math.max(0, bess.state(1).requestedKw);
    let load = 30; // the meter's worst case until its first reading
    let settledLoad = 30;
    const violations: string[] = [];
    // Sampled once every charger has its first setpoint: before that, a charger that no
    // schedule has steered yet is not limited (see the README's Limits).
    let sampling = false;
    const sampler = setInterval(() => {
      if (!sampling) return;
      const total = chargersKw() + batteryKw() + settledLoad;
      if (total > LIMIT_KW + EPS)
        violations.push(
          `${new Date().toISOString()}: chargers ${chargersKw().toFixed(2)} + battery ${batteryKw()} + load ${settledLoad} = ${total.toFixed(2)} kW`,
        );
    }, 100);
    try {
      /** Waits until the devices fit the current load and have not changed for 1 s. */
      const settle = async (what: string, done = () => true) => {
        const until = Date.now() + 30_000;
        let last = '';
        let since = Date.now();
        for (;;) {
          const now = `${chargersKw().toFixed(3)}/${batteryKw()}`;
          if (now !== last) {
            last = now;
            since = Date.now();
          }
          const fits = chargersKw() + batteryKw() + load <= LIMIT_KW + EPS;
          if (fits && done() && Date.now() - since >= 1000) break;
          if (Date.now() > until)
            throw new Error(
              `${what}: not settled within 30 s (chargers ${chargersKw()} kW, battery ${batteryKw()} kW, load ${load} kW)\n${nodeRed.tail(40)}`,
            );
          await sleep(100);
        }
        settledLoad = load;
      };

      should(await post(nodeRed.base, '/meter', { kw: 0 })).equal(200);
      load = 0;
      settledLoad = 0;
      const start = Date.now() - 1000;
      const hour = 3_600_000;
      const row = [...EVS.map(() => 11), 10, 0];
      should(
        await post(nodeRed.base, '/schedule', {
          columns: [...EVS.map((n) => `ev_v${n}_kw`), 'battery_charge_kw', 'battery_discharge_kw'],
          index: [start, start + hour],
          data: [row, row],
        }),
      ).equal(202);
      await settle('schedule at full power', () => batteryKw() === 10 && chargersKw() > 30);
      sampling = true;
      // 50 kW - 10 kW of battery = 40 kW for ten chargers: 4 kW each is below 6 A (4.14 kW),
      // so nine at 4.44 kW, one at 0.
      should(chargersKw()).be.approximately(40, 0.1);

      for (const kw of [10, 20, 30]) {
        load = kw;
        should(await post(nodeRed.base, '/meter', { kw })).equal(200);
        await settle(`building at ${kw} kW`);
      }
      should(chargersKw() + batteryKw()).be.belowOrEqual(20 + EPS);

      // The building empties: the chargers go back up, paced (1 s), after nothing else.
      load = 0;
      settledLoad = 0; // a smaller load is a fact at once: check the rise against it
      should(await post(nodeRed.base, '/meter', { kw: 0 })).equal(200);
      await settle('building at 0 kW', () => chargersKw() > 35);
      should(violations).eql([]);
      const before = chargersKw();
      should(before).be.above(20);

      // The gateway is gone.
      clearInterval(sampler);
      await nodeRed.kill('SIGKILL');
      const killedAt = Date.now();
      await sleep(FAILSAFE_AFTER_S * 1000 + 2000);
      const shares = chargers.map((c) => Math.min(c.limitAt(Date.now()) ?? 11_000, 11_000) / 1000);
      // 50 kW - 30 kW worst case of the building = 20 kW: four may draw 5 kW, six nothing;
      // a charger keeps the lower of its setpoint and its share.
      should(shares.reduce((a, b) => a + b, 0)).be.belowOrEqual(20 + EPS);
      should(shares.filter((v) => v > 0).length).be.belowOrEqual(4);
      for (const v of shares) should(v).be.belowOrEqual(5 + EPS, `shares ${shares.join(' ')}`);
      // The battery's watchdog reverted it to 0 when no one wrote any more.
      should(batteryKw()).equal(0);
      const revert = bess.setpointHistory(1).find((h) => h.cause === 'revert' && h.at >= killedAt);
      should(revert).be.ok();
      console.log(
        `      chargers ${before.toFixed(1)} kW with Node-RED up; ${shares.reduce((a, b) => a + b, 0).toFixed(1)} kW (${shares.map((v) => v.toFixed(1)).join(' ')}) ${FAILSAFE_AFTER_S + 2} s after kill -9; battery reverted ${revert ? revert.at - killedAt : '?'} ms after`,
      );
    } finally {
      clearInterval(sampler);
    }
  });
});
