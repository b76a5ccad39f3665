import should from 'should';
import {
  type CapabilityEvent,
  type FailsafeEvent,
  OcppChargers,
  type OcppChargersOptions,
} from '../../src/adapters/ocpp/chargers';
import type { ChargerConfig, OcppVersion } from '../../src/adapters/ocpp/translate';
import { type Command, CommandStatus } from '../../src/commands';
import { ChargePointSimulator, type ChargePointSimulatorOptions } from '../../src/sim/charge-point';
import type { SimChargingProfile } from '../../src/sim/charging-profiles';
import { Site } from '../../src/site';
import { failsafeOnCP1 } from '../helpers/failsafe-unit';
import { closePeers, peers, startCentral, until } from '../helpers/ocpp-peers';

// The OCPP part of the failsafe chain (issue 14) on loopback sockets: a real central system and
// the simulated charge point. The adapter keeps one station maximum profile per charger (the
// cap now, the failsafe share from failsafeAfterS on) and moves the step ahead while connected;
// when the central system is gone, the charger's own profiles bring it down to its share.

const AFTER_S = 1.5;
const SHARE_KW = 4;
const sims: ChargePointSimulator[] = [];
afterEach(async () => {
  await Promise.all(sims.splice(0).map((s) => s.stop()));
  await closePeers();
});

type Event = Parameters<NonNullable<OcppChargersOptions['onEvent']>>[0];
const isMax = (p: SimChargingProfile) =>
  p.purpose === 'ChargePointMaxProfile' || p.purpose === 'ChargingStationMaxProfile';

async function setup(
  protocol: OcppVersion,
  simOptions: Partial<ChargePointSimulatorOptions> = {},
  config: Partial<ChargerConfig> = { failsafeKw: SHARE_KW },
  failsafeAfterS = AFTER_S,
) {
  const { central, port } = await startCentral({ chargers: [{ identity: 'CP001' }] });
  const site = new Site({
    siteId: 't',
    autoDispatch: true,
    config: { commandTimeoutSeconds: 5, retryBaseSeconds: 0.05 },
    onError: () => {},
  });
  peers.sites.push(site);
  const events: Event[] = [];
  const fleet = new OcppChargers(
    site,
    central,
    [{ identity: 'CP001', assetId: 'ev1', ratedKw: 22, ...config }],
    {
      // A connect and its boot give one re-apply (and one profile), even on a slow machine.
      reapplyDelayMs: 150,
      failsafeAfterS,
      onEvent: (e) => events.push(e),
    },
  );
  fleet.start();
  site.start();
  const sim = new ChargePointSimulator({
    endpoint: `ws://127.0.0.1:${port}/ocpp`,
    identity: 'CP001',
    protocol,
    evMaxKw: 22,
    meterIntervalMs: 0,
    backoff: { initialDelay: 20, maxDelay: 100 },
    ...simOptions,
  });
  sims.push(sim);
  /** Station maximum profiles the charger was sent, with when. */
  const maxCalls: { at: number; params: unknown }[] = [];
  sim.on('call', (method: string, params: unknown) => {
    if (method === 'SetChargingProfile' && /MaxProfile/.test(JSON.stringify(params)))
      maxCalls.push({ at: Date.now(), params });
  });
  const failsafe = () =>
    events.filter((e): e is FailsafeEvent & { assetIds: string[] } => e.type === 'failsafe');
  const applied = () => failsafe().filter((e) => e.status === 'applied').length;
  await sim.start();
  await until(() => site.getStateMachine('ev1')?.currentState === 'AVAILABLE', 'AVAILABLE');
  /** Submits a setpoint and waits until it ends. */
  const run = async (valueKw: number, type = 'SET_CHARGE_RATE', validUntil?: number) => {
    const [cmd] = site.submit({
      assetId: 'ev1',
      type,
      valueKw,
      ...(validUntil ? { validUntil } : {}),
    } as never);
    if (!cmd) throw new Error('not submitted');
    await until(
      () => cmd.status === CommandStatus.COMPLETED || cmd.status === CommandStatus.FAILED,
      `${valueKw} kW ended`,
    );
    return cmd as Command;
  };
  const station = () => sim.profiles.filter(isMax);
  return { central, site, fleet, sim, events, maxCalls, failsafe, applied, run, station };
}

/** The limits (W) of a profile's periods, and when its schedule starts (epoch ms). */
function periods(p: SimChargingProfile | undefined) {
  should(p).be.ok();
  const s = (p as SimChargingProfile).chargingSchedule;
  return {
    start: Date.parse(s.startSchedule ?? ''),
    periods: s.chargingSchedulePeriod.map((q) => [q.startPeriod, q.limit]),
  };
}

describe('OCPP failsafe chain (loopback, real sockets)', () => {
  for (const protocol of ['ocpp1.6', 'ocpp2.0.1'] as OcppVersion[]) {
    describe(protocol, () => {
      it('boot: the two-period max profile; refreshes keep the step ahead; central gone: the charger steps down to its share on its own, a cap above it does not lift it', async () => {
        const { central, sim, maxCalls, applied, run, station } = await setup(protocol);
        await until(() => applied() === 1, 'the failsafe profile applied at boot');
        const first = periods(station()[0]);
        should(first.periods).eql([
          [0, 22000],
          [62, SHARE_KW * 1000],
        ]);
        // The step is AFTER_S after it was sent (startPeriod is whole seconds): the profile
        // held is the last one received.
        const last = maxCalls.at(-1)?.at ?? 0;
        should(first.start + 62_000).be.within(last, last + AFTER_S * 1000);
        await sim.plugIn();
        await sim.startCharging();
        // A cap above the share, then a rate above the share: both in force while connected.
        should((await run(15, 'SET_POWER_LIMIT')).status).equal(CommandStatus.COMPLETED);
        should((await run(10)).status).equal(CommandStatus.COMPLETED);
        should(station()).have.length(1); // the cap replaced the failsafe profile, no stacking
        should(periods(station()[0]).periods).eql([
          [0, 15000],
          [62, SHARE_KW * 1000],
        ]);
        should(sim.activeLimitW).equal(10000);
        should(sim.powerW).equal(10000);
        // Refreshes: more than AFTER_S of them, and the step never came.
        const since = Date.now();
        const n = maxCalls.length;
        await until(
          () => maxCalls.length >= n + 4 && Date.now() - since > AFTER_S * 1000,
          'refreshes over more than failsafeAfterS',
          1200,
        );
        should(sim.limitHistory.filter((c) => c.at >= since).map((c) => c.limitW)).eql([]);
        should(sim.activeLimitW).equal(10000);
        should(periods(station()[0]).periods).eql([
          [0, 15000],
          [62, SHARE_KW * 1000],
        ]);
        // The gateway goes: nobody moves the step any more.
        // The charger's own 'profile' event (its step timer, not a read that recomputes).
        let stepped: number | null = null;
        sim.on('profile', (w: number | null) => {
          if (w === SHARE_KW * 1000) stepped = w;
        });
        const gone = Date.now();
        await central.close();
        should(sim.limitAt(gone)).equal(10000);
        // By its own profiles, at most its share failsafeAfterS later, whatever comes.
        should(sim.limitAt(gone + AFTER_S * 1000)).equal(SHARE_KW * 1000);
        should(sim.limitAt(gone + 3_600_000)).equal(SHARE_KW * 1000);
        await until(() => stepped !== null, 'the charger stepped down on its own', 800);
        should(sim.connected).be.false();
        should(sim.powerW).equal(SHARE_KW * 1000);
        should(sim.activeLimitW).equal(SHARE_KW * 1000);
      });

      it('a reconnect without boot gets the profile again, at once', async () => {
        // A long delay: refreshes come every 10 s, so only the reconnect sends one now.
        const { sim, maxCalls, applied } = await setup(
          protocol,
          { bootOnReconnect: false },
          { failsafeKw: SHARE_KW },
          30,
        );
        await until(() => applied() === 1, 'applied at boot');
        const n = maxCalls.length;
        const resumed = new Promise((r) => sim.once('resumed', r));
        await sim.dropConnection({ reconnectAfterMs: 20 });
        await resumed;
        await until(() => applied() === 2, 'applied again on the reconnect');
        should(maxCalls).have.length(n + 1);
        const p = periods(sim.profiles.find(isMax));
        should(p.periods).eql([
          [0, 22000],
          [90, SHARE_KW * 1000],
        ]);
        should(p.start + 90_000).be.above(Date.now());
      });

      it('a setpoint with validUntil gets validTo = validUntil + failsafeAfterS; after it the charger falls back to its max profile, not to its rating', async () => {
        const { central, sim, applied, run } = await setup(protocol);
        await until(() => applied() === 1, 'applied at boot');
        const validUntil = Date.now() + 2500;
        should((await run(3, 'SET_CHARGE_RATE', validUntil)).status).equal(CommandStatus.COMPLETED);
        const tx = sim.profiles.find((p) => p.purpose === 'TxDefaultProfile');
        const validTo = Date.parse(tx?.validTo ?? '');
        should(validTo).equal(Math.ceil((validUntil + AFTER_S * 1000) / 1000) * 1000);
        should(sim.activeLimitW).equal(3000);
        await central.close();
        const step = periods(sim.profiles.find(isMax)).start + 62_000;
        should(sim.limitAt(validTo - 1)).equal(3000);
        should(sim.limitAt(Math.max(validTo, step))).equal(SHARE_KW * 1000);
        await until(
          () => sim.activeLimitW === SHARE_KW * 1000,
          'fell back to the max profile',
          1200,
        );
        should(sim.limitAt(validTo + 3_600_000)).equal(SHARE_KW * 1000);
      });

      it('a charger that does not implement the max profile is reported once, not asked again; its setpoints get no validTo', async () => {
        const { fleet, sim, maxCalls, events, run } = await setup(protocol, {
          respond: (method, params) =>
            method === 'SetChargingProfile' && /MaxProfile/.test(JSON.stringify(params))
              ? 'NotSupported'
              : undefined,
        });
        const told = () =>
          events.filter(
            (e): e is CapabilityEvent & { assetIds: string[] } =>
              e.type === 'capability' && e.capability === 'maxProfile',
          );
        await until(() => told().length === 1, 'reported');
        should(told()[0]).have.properties({
          identity: 'CP001',
          value: false,
          answer: 'NotSupported',
        });
        should(fleet.limitations()).eql(['CP001: no failsafe profile']);
        should((await run(7, 'SET_CHARGE_RATE', Date.now() + 60_000)).status).equal(
          CommandStatus.COMPLETED,
        );
        should(sim.profiles.find((p) => p.purpose === 'TxDefaultProfile')).not.have.property(
          'validTo',
        );
        // Three refresh intervals and more: nothing asked again, nothing told again.
        await new Promise((r) => setTimeout(r, AFTER_S * 1000));
        should(maxCalls).have.length(1);
        should(told()).have.length(1);
      });

      it('a refused refresh is reported and retried at the next one', async () => {
        let refuse = 2;
        const { fleet, failsafe, maxCalls } = await setup(protocol, {
          respond: (method, params) =>
            method === 'SetChargingProfile' &&
            /MaxProfile/.test(JSON.stringify(params)) &&
            refuse-- > 0
              ? 'Rejected'
              : undefined,
        });
        await until(() => failsafe().some((e) => e.status === 'failed'), 'failure reported');
        should(fleet.limitations()).eql(['CP001: failsafe profile failed']);
        should(failsafe()[0]?.message).match(/refused: SetChargingProfile answered Rejected/);
        await until(() => failsafe().some((e) => e.status === 'applied'), 'applied on a retry');
        should(maxCalls).have.length(3);
        should(failsafe().map((e) => e.status)).eql(['failed', 'applied']); // told on a change
        should(fleet.limitations()).eql([]);
      });

      it("the host's failsafe share: none known, no max profile; once known and refreshed, sent", async () => {
        let share: number | undefined;
        const { site, fleet, sim, maxCalls, failsafe, run } = await setup(protocol, {}, {});
        // The lead's Site computes it from its circuits; here the host gives it by hand.
        (site as unknown as { failsafeKw: (id: string) => number | undefined }).failsafeKw = (
          id,
        ) => (id === 'ev1' ? share : undefined);
        should((await run(7, 'SET_CHARGE_RATE', Date.now() + 60_000)).status).equal(
          CommandStatus.COMPLETED,
        );
        should(maxCalls).have.length(0);
        should(sim.profiles.find((p) => p.purpose === 'TxDefaultProfile')).not.have.property(
          'validTo',
        );
        share = 5;
        fleet.refreshFailsafe('ev1');
        await until(() => failsafe().some((e) => e.status === 'applied'), 'applied');
        should(periods(sim.profiles.find(isMax)).periods).eql([
          [0, 22000],
          [62, 5000],
        ]);
      });
    });
  }

  it('unit: a charger that does not answer has one refresh waiting, not one per interval; an accepted cap is kept, a refused one not', async () => {
    const sent: unknown[] = [];
    let answer: (v: unknown) => void = () => {};
    // A stand-in for the central system: a charger that holds every call until told.
    const fs = failsafeOnCP1(
      {
        call: (_id: string, _method: string, params: unknown) => {
          sent.push(params);
          return new Promise((r) => {
            answer = r;
          });
        },
      },
      30,
    );
    fs.start();
    try {
      for (let i = 0; i < 5; i++) fs.sendNow('CP1');
      should(sent).have.length(1);
      answer({ status: 'Accepted' });
      await new Promise((r) => setImmediate(r));
      const cap = (kw: number, id: string) =>
        ({ id, valueKw: kw, validUntil: null }) as unknown as Command;
      fs.noteCap('CP1', cap(9, 'a'));
      fs.settleCap('CP1', 'a', true);
      fs.noteCap('CP1', cap(15, 'b'));
      fs.sendNow('CP1'); // while b waits for its answer, refreshes carry it
      should(JSON.stringify(sent[1])).match(/"limit":15000\}/);
      fs.settleCap('CP1', 'b', false); // refused: back to 9 kW
      answer({ status: 'Accepted' });
      await new Promise((r) => setImmediate(r));
      fs.sendNow('CP1');
      should(JSON.stringify(sent[2])).match(
        /\[\{"startPeriod":0,"limit":9000\},\{"startPeriod":90,"limit":4000\}\]/,
      );
    } finally {
      fs.stop();
    }
  });

  it('checks failsafeAfterS and failsafeKw, naming the charger', async () => {
    const { central } = await startCentral();
    const site = new Site({ siteId: 't', autoDispatch: true });
    const make = (c: Partial<ChargerConfig>, failsafeAfterS?: number) =>
      new OcppChargers(
        site,
        central,
        [{ identity: 'CP1', assetId: 'ev1', ratedKw: 11, ...c }],
        failsafeAfterS === undefined ? {} : { failsafeAfterS },
      );
    should(() => make({}, 1)).throw(/OCPP chargers: failsafeAfterS must be .* from 1.5/);
    should(() => make({ failsafeAfterS: 0 })).throw(/charger \[0\] \(CP1\): failsafeAfterS/);
    should(() => make({ failsafeKw: -1 })).throw(/CP1\): failsafeKw must be a number of kW >= 0/);
    should(() => make({ failsafeKw: 12 })).throw(/failsafeKw \(12\) is above ratedKw \(11\)/);
    should(() => make({ failsafeKw: 3, ratedKw: undefined })).throw(/failsafeKw needs ratedKw/);
    should(() => make({ failsafeKw: 3, failsafeAfterS: 30 }, 60)).not.throw();
  });
});
