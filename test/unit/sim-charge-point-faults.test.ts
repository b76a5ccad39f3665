import should from 'should';
import { ManualClock } from '../../src/clock';
import {
  ChargePointSimulator,
  type ChargePointSimulatorOptions,
  type LimitChange,
  type OcppProtocol,
} from '../../src/sim/charge-point';
import { type Params, setProfile, T0, TestCentral, until } from '../helpers/ocpp-test-central';

// The faults that the charge point simulator plays for fault tests, against a strict ocpp-rpc
// central system on 127.0.0.1: a network drop (abrupt or clean) after which it resumes
// without booting, a reboot that forgets its profiles, TriggerMessage StatusNotification, and
// the limit it applies with its history. Every wait is bounded by mocha's timeout.

const t0 = Date.parse(T0);

describe('ChargePointSimulator faults', () => {
  let central: TestCentral;
  let sims: ChargePointSimulator[] = [];
  let clock: ManualClock;

  beforeEach(async () => {
    central = new TestCentral();
    await central.listen();
    clock = new ManualClock(T0);
  });

  afterEach(async () => {
    await Promise.all(sims.map((s) => s.stop()));
    sims = [];
    await central.close();
    should(central.strictFailures).eql([]);
  });

  function sim(protocol: OcppProtocol, extra: Partial<ChargePointSimulatorOptions> = {}) {
    const s = new ChargePointSimulator({
      endpoint: central.url,
      identity: `CP-${protocol}`,
      protocol,
      clock,
      meterIntervalMs: 0,
      backoff: { initialDelay: 50, maxDelay: 200, randomisationFactor: 0 },
      ...extra,
    });
    sims.push(s);
    return s;
  }

  /** A charger charging under a 5 kW TxDefaultProfile. */
  async function charging(
    protocol: OcppProtocol,
    extra: Partial<ChargePointSimulatorOptions> = {},
  ) {
    const s = sim(protocol, extra);
    await s.start();
    await s.plugIn();
    await s.startCharging();
    const id = s.identity;
    const res = await central.call(
      id,
      'SetChargingProfile',
      setProfile(protocol, { purpose: 'TxDefaultProfile', limit: 5000 }),
    );
    should(res).eql({ status: 'Accepted' });
    should(s.activeLimitW).equal(5000);
    return s;
  }

  /** Calls from the charger since `mark`, by method. */
  const methods = (mark: number) => central.received.slice(mark).map((r) => r.method);

  for (const protocol of ['ocpp1.6', 'ocpp2.0.1'] as const) {
    const v16 = protocol === 'ocpp1.6';
    const id = `CP-${protocol}`;
    const connections = () => central.clients.filter((c) => c.identity === id).length;

    describe(protocol, () => {
      for (const clean of [false, true]) {
        it(`drops the network (${clean ? 'clean close' : 'socket destroyed'}) and resumes without booting, keeping its session`, async () => {
          const s = await charging(protocol);
          const tx = s.transactionId;
          const events: string[] = [];
          for (const e of ['dropped', 'disconnected', 'connected', 'resumed', 'booted'])
            s.on(e, () => events.push(e));
          const mark = central.received.length;
          await s.dropConnection({ reconnectAfterMs: 50, clean });
          should(s.connected).be.false();
          await until(() => central.closes.length === 1);
          should(central.closes).eql([{ identity: id, code: clean ? 1001 : 1006 }]);
          await until(() => events.includes('resumed'));
          should(events).eql(['disconnected', 'dropped', 'connected', 'resumed']);
          should(connections()).equal(2);
          // Ask it for something: it answers on the new connection, and had sent nothing before.
          const hb = await central.call(id, 'TriggerMessage', { requestedMessage: 'Heartbeat' });
          should(hb).eql({ status: 'Accepted' });
          await central.waitFor('Heartbeat', mark);
          should(methods(mark)).eql(['Heartbeat']);
          // Its session is what it was: the transaction, the profile, the limit and the power.
          should(s.transactionId).equal(tx);
          should(s.status).equal('Charging');
          should(s.activeLimitW).equal(5000);
          should(s.powerW).equal(5000);
          should(s.profiles.map((p) => p.purpose)).eql(['TxDefaultProfile']);
          const composite = await central.call(id, 'GetCompositeSchedule', {
            ...(v16 ? { connectorId: 1 } : { evseId: 1 }),
            duration: 600,
            chargingRateUnit: 'W',
          });
          const schedule = (v16 ? composite.chargingSchedule : composite.schedule) as Params;
          should(schedule.chargingSchedulePeriod).eql([{ startPeriod: 0, limit: 5000 }]);
          should(s.limitHistory.map((c) => c.limitW)).eql([5000]);
          // And it goes on reporting: a stop is sent on the new connection.
          await s.stopCharging();
          await central.waitFor(v16 ? 'StopTransaction' : 'TransactionEvent', mark, (p) =>
            v16 ? true : p.eventType === 'Ended',
          );
        });
      }

      it('reboots: ends the transaction, forgets its profiles, boots and reports its status', async () => {
        const s = await charging(protocol);
        const mark = central.received.length;
        await s.reboot({ downMs: 50 });
        should(s.connected).be.false();
        should(s.profiles).eql([]);
        should(s.activeLimitW).be.null();
        await until(() => central.closes.length === 1);
        should(central.closes[0]?.code).equal(1001);
        await central.waitFor('BootNotification', mark);
        const booted = central.received.findIndex(
          (r, i) => i >= mark && r.method === 'BootNotification',
        );
        const status = await central.waitFor('StatusNotification', booted, (p) =>
          v16 ? p.connectorId === 1 : true,
        );
        await until(() => s.connected && s.status === 'Preparing');
        // The transaction ended before the connection went, with reason Reboot.
        if (v16) {
          should(methods(mark).slice(0, 3)).eql([
            'StopTransaction',
            'StatusNotification',
            'BootNotification',
          ]);
          should(central.of('StopTransaction', mark)[0]).containEql({ reason: 'Reboot' });
          should(status).containEql({ status: 'Preparing' }); // the EV is still plugged in
        } else {
          const ended = central.of('TransactionEvent', mark)[0] as Params;
          should(ended.eventType).equal('Ended');
          should((ended.transactionInfo as Params).stoppedReason).equal('Reboot');
          should(status).containEql({ connectorStatus: 'Occupied' });
        }
        should(s.transactionId).be.null();
        should(s.limitHistory.map((c) => c.limitW)).eql([5000, null]);
      });

      it('reboots keeping its profiles when told to, destroying the socket', async () => {
        const s = await charging(protocol);
        const mark = central.received.length;
        await s.reboot({ downMs: 20, keepProfiles: true, clean: false });
        await central.waitFor('BootNotification', mark);
        await until(() => central.closes.length === 1);
        should(central.closes[0]?.code).equal(1006);
        should(s.profiles.map((p) => p.purpose)).eql(['TxDefaultProfile']);
        should(s.activeLimitW).equal(5000);
      });

      it('answers TriggerMessage StatusNotification with Accepted, then sends the status', async () => {
        const s = await charging(protocol);
        const mark = central.received.length;
        const order = central.inbound.length;
        const at = v16 ? { connectorId: 1 } : { evse: { id: 1, connectorId: 1 } };
        const res = await central.call(id, 'TriggerMessage', {
          requestedMessage: 'StatusNotification',
          ...at,
        });
        should(res).eql({ status: 'Accepted' });
        const sent = await central.waitFor('StatusNotification', mark);
        if (v16) should(sent).containEql({ connectorId: 1, status: 'Charging' });
        else should(sent).containEql({ evseId: 1, connectorId: 1, connectorStatus: 'Occupied' });
        should(central.inbound.slice(order).map((m) => m.what)).eql([
          'answer to TriggerMessage',
          'StatusNotification',
        ]);
        // Not ours: Rejected, nothing sent.
        const other = v16 ? { connectorId: 2 } : { evse: { id: 2 } };
        should(
          await central.call(id, 'TriggerMessage', {
            requestedMessage: 'StatusNotification',
            ...other,
          }),
        ).eql({ status: 'Rejected' });
        if (v16) {
          // Connector 0 is the station; without a connector, every one.
          const mark0 = central.received.length;
          await central.call(id, 'TriggerMessage', {
            requestedMessage: 'StatusNotification',
            connectorId: 0,
          });
          should(await central.waitFor('StatusNotification', mark0)).containEql({
            connectorId: 0,
            status: 'Available',
          });
          const markAll = central.received.length;
          await central.call(id, 'TriggerMessage', { requestedMessage: 'StatusNotification' });
          await until(() => central.of('StatusNotification', markAll).length === 2);
          should(central.of('StatusNotification', markAll).map((p) => p.connectorId)).eql([0, 1]);
        }
        should(central.of('StatusNotification', mark).length).equal(v16 ? 4 : 1);
        should(s.status).equal('Charging');
      });

      it('resumes without booting after the server closes, with bootOnReconnect false', async () => {
        const s = await charging(protocol, { bootOnReconnect: false });
        const mark = central.received.length;
        const resumed = new Promise((r) => s.once('resumed', r));
        await central.client(id).close({ code: 1012, reason: 'service restart' });
        await resumed;
        await central.call(id, 'TriggerMessage', { requestedMessage: 'Heartbeat' });
        await central.waitFor('Heartbeat', mark);
        should(methods(mark)).eql(['Heartbeat']);
        should(s.status).equal('Charging');
        should(s.activeLimitW).equal(5000);
      });
    });
  }

  it('keeps a history of the limits it applied, with their times, and says the limit now', async () => {
    const s = sim('ocpp1.6');
    const seen: LimitChange[] = [];
    s.on('profile', (_w: number | null, change: LimitChange) => seen.push(change));
    await s.start();
    await s.plugIn();
    await s.startCharging();
    const id = s.identity;
    await central.call(
      id,
      'SetChargingProfile',
      setProfile('ocpp1.6', { purpose: 'TxDefaultProfile', limit: 7000 }),
    );
    clock.advance(60_000);
    // A schedule: 4 kW now, 2 kW from 120 s on.
    const later = setProfile('ocpp1.6', {
      purpose: 'TxDefaultProfile',
      limit: 4000,
      start: new Date(t0 + 60_000).toISOString(),
    });
    const cs = later.csChargingProfiles as {
      chargingSchedule: { chargingSchedulePeriod: unknown[] };
    };
    cs.chargingSchedule.chargingSchedulePeriod.push({ startPeriod: 120, limit: 2000 });
    await central.call(id, 'SetChargingProfile', later);
    should(s.activeLimitW).equal(4000);
    clock.advance(150_000);
    // Nothing was sent or received: reading the limit evaluates the schedule now.
    should(s.activeLimitW).equal(2000);
    should(s.limitHistory).eql([
      { at: t0, limitW: 7000, powerW: 7000 },
      { at: t0 + 60_000, limitW: 4000, powerW: 4000 },
      { at: t0 + 210_000, limitW: 2000, powerW: 2000 },
    ]);
    should(seen).eql(s.limitHistory);
  });

  it('checks the fault options, and a drop before connecting is an error', async () => {
    const s = sim('ocpp2.0.1');
    await should(s.dropConnection()).be.rejectedWith(/not connected, nothing to drop/);
    await should(s.dropConnection({ reconnectAfterMs: -1 })).be.rejectedWith(/reconnectAfterMs/);
    await should(s.reboot({ downMs: Number.NaN })).be.rejectedWith(/downMs/);
    await should(s.fault('Broken' as never)).be.rejectedWith(
      /errorCode must be one of ConnectorLockFailure, .*, got "Broken"/,
    );
  });

  it('stays down when stopped while it waits to reconnect', async () => {
    const s = sim('ocpp2.0.1');
    const warnings: Error[] = [];
    s.on('warning', (e: Error) => warnings.push(e));
    await s.start();
    await s.dropConnection({ reconnectAfterMs: 30 });
    await s.stop();
    // Longer than the reconnect delay: a reconnection would have shown by now.
    await new Promise((r) => setTimeout(r, 200));
    should(central.clients.length).equal(1);
    should(s.connected).be.false();
    should(warnings).eql([]);
  });
});
