import should from 'should';
import { OcppChargers, type OcppChargersOptions } from '../../src/adapters/ocpp/chargers';
import type { OcppVersion } from '../../src/adapters/ocpp/translate';
import { type Command, CommandStatus } from '../../src/commands';
import { type AssetCompliant, type AssetDeviation, EventType } from '../../src/event-bus';
import { ChargePointSimulator, type ChargePointSimulatorOptions } from '../../src/sim/charge-point';
import { Site } from '../../src/site';
import { closePeers, peers, startCentral, until } from '../helpers/ocpp-peers';

// Escalation (issue 13), `onDeviation: 'reapply-other-unit'`, on loopback sockets: a simulated
// charger that follows limits in one unit only (`honourUnit`; a profile in the other is
// Accepted and ignored) draws more than its limit; the adapter sends it in the other unit
// once, learned until the charger boots. Meter values every 20 ms, a grace of 100 ms; every
// wait bounded by `until`.

const sims: ChargePointSimulator[] = [];
afterEach(async () => {
  await Promise.all(sims.splice(0).map((s) => s.stop()));
  await closePeers();
});

type Event = Parameters<NonNullable<OcppChargersOptions['onEvent']>>[0];

async function setup(protocol: OcppVersion, simOptions: Partial<ChargePointSimulatorOptions>) {
  const { central, port } = await startCentral({ chargers: [{ identity: 'CP001' }] });
  const site = new Site({
    siteId: 't',
    autoDispatch: true,
    config: { commandTimeoutSeconds: 5, retryBaseSeconds: 0.05 },
    compliance: { graceMs: { 'ev-limit': 100 } },
    onError: () => {},
  });
  peers.sites.push(site);
  const events: Event[] = [];
  const fleet = new OcppChargers(
    site,
    central,
    [
      {
        identity: 'CP001',
        assetId: 'ev1',
        confirm: 'accepted',
        meterIntervalSeconds: 1,
        onDeviation: 'reapply-other-unit',
      },
    ],
    { reapplyDelayMs: 20, onEvent: (e) => events.push(e) },
  );
  fleet.start();
  site.start();
  const deviations: AssetDeviation[] = [];
  const compliant: AssetCompliant[] = [];
  site.eventBus.subscribe(EventType.ASSET_DEVIATION, (e) => deviations.push(e.payload));
  site.eventBus.subscribe(EventType.ASSET_COMPLIANT, (e) => compliant.push(e.payload));
  const sim = new ChargePointSimulator({
    endpoint: `ws://127.0.0.1:${port}/ocpp`,
    identity: 'CP001',
    protocol,
    evMaxKw: 11,
    meterIntervalMs: 20,
    backoff: { initialDelay: 20, maxDelay: 100 },
    ...simOptions,
  });
  sims.push(sim);
  /** The chargingRateUnit of every SetChargingProfile the charger got. */
  const units: string[] = [];
  sim.on('call', (method: string, params: Record<string, unknown>) => {
    if (method !== 'SetChargingProfile') return;
    const p = (params.csChargingProfiles ?? params.chargingProfile) as {
      chargingSchedule: { chargingRateUnit: string } | { chargingRateUnit: string }[];
    };
    const s = p.chargingSchedule;
    units.push((Array.isArray(s) ? s[0] : s)?.chargingRateUnit ?? '?');
  });
  await sim.start();
  await until(() => site.getStateMachine('ev1')?.currentState === 'AVAILABLE', 'AVAILABLE');
  await sim.plugIn();
  await sim.startCharging();
  await until(() => sim.powerW === 11_000, 'the EV draws 11 kW');
  const unitEvents = () => events.filter((e) => e.type === 'capability');
  const run = async (valueKw: number): Promise<Command> => {
    const [cmd] = site.submit({ assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw });
    if (!cmd) throw new Error('not submitted');
    await until(() => cmd.status === CommandStatus.COMPLETED, `${valueKw} kW COMPLETED`);
    return cmd;
  };
  return { site, fleet, sim, events, units, unitEvents, deviations, compliant, run };
}

describe('compliance: re-apply in the other unit (loopback, simulated charger)', () => {
  for (const protocol of ['ocpp1.6', 'ocpp2.0.1'] as OcppVersion[]) {
    it(`${protocol}: a charger that ignores W follows the limit re-applied in A; a boot forgets it`, async () => {
      const { site, fleet, sim, units, unitEvents, deviations, compliant, run } = await setup(
        protocol,
        { honourUnit: 'A' },
      );
      await run(7.4);
      should(units).eql(['W']);
      // Accepted and ignored: it goes on drawing 11 kW; deviation, then the switch to A.
      await until(() => deviations.length === 1, 'ASSET_DEVIATION');
      await until(() => compliant.length === 1, 'ASSET_COMPLIANT after the re-apply in A');
      should(units).eql(['W', 'A']);
      // 7.4 kW / (230 V x 3) = 10.7 A: it applies 7383 W.
      should(sim.activeLimitW).be.approximately(7383, 0.01);
      should(compliant[0]).containDeep({ assetId: 'ev1', setpointKw: 7.4 });
      should(compliant[0]?.measuredKw).be.approximately(7.383, 0.001);
      should(unitEvents()).have.length(1);
      should(unitEvents()[0]).match({
        type: 'capability',
        identity: 'CP001',
        capability: 'unit',
        value: 'A',
        assetIds: ['ev1'],
        message: /did not follow its limit in W \(11 kW > 7\.4 kW limit\): its limits go in A/,
      });
      should(site.assets.get('ev1')?.capabilities.get('unit')).equal('A');
      should(fleet.limitations()).eql(['ev1: limits in A']);
      const reapplied = site.engine.getCommands().filter((c) => c.reapplyOf !== undefined);
      should(reapplied).have.length(1);

      // The next setpoint goes in A at once: followed, no deviation.
      await run(5);
      should(units).eql(['W', 'A', 'A']);
      await until(() => Math.abs(sim.powerW - 4968) < 0.01, 'the EV draws 7.2 A x 690 V');
      should(deviations).have.length(1);

      // It boots again: the switch is forgotten, its limits go in W again.
      const booted = new Promise((r) => sim.once('rebooting', r));
      await sim.reboot({ downMs: 10 });
      await booted;
      await until(
        () => site.assets.get('ev1')?.capabilities.get('unit') === undefined,
        'forgotten on boot',
      );
      should(fleet.limitations()).eql([]);
      await until(() => units.length === 4, 'the setpoint in force re-applied after the boot');
      should(units[3]).equal('W');
    });
  }

  it('a charger that ignores both units: switched once, then only reported (no flipping)', async () => {
    const { site, sim, events, units, unitEvents, deviations, compliant, run } = await setup(
      'ocpp1.6',
      {
        quirk: 'ignore-profile',
      },
    );
    await run(7.4);
    await until(() => deviations.length === 1, 'ASSET_DEVIATION');
    await until(() => units.length === 2, 'the limit re-applied in A');
    const reapply = site.engine.getCommands().find((c) => c.reapplyOf !== undefined);
    await until(() => reapply?.status === CommandStatus.COMPLETED, 're-apply COMPLETED');
    // It goes on drawing 11 kW for 15 more readings (20 ms apart: several graces of 100 ms):
    // the same episode, nothing more sent.
    const meters = () => events.filter((e) => e.type === 'meter').length;
    const seen = meters();
    await until(() => meters() >= seen + 15, 'fifteen more readings');
    should(site.compliance.stateOf('ev1')).equal('deviating');
    should(units).eql(['W', 'A']);
    should(unitEvents()).have.length(1);
    should(deviations).have.length(1);
    should(compliant).have.length(0);
    should(sim.powerW).equal(11_000);

    // A limit it keeps to (11 kW) ends the episode; a lower one starts a new one: reported
    // only, still in A (it does not switch back).
    await run(11);
    await until(() => compliant.length === 1, 'ASSET_COMPLIANT at 11 kW');
    await run(7.4);
    await until(() => deviations.length === 2, 'a second ASSET_DEVIATION');
    const again = meters();
    await until(() => meters() >= again + 15, 'fifteen more readings');
    should(units).eql(['W', 'A', 'A', 'A']);
    should(unitEvents()).have.length(1);
    should(site.assets.get('ev1')?.capabilities.get('unit')).equal('A');
    should(site.engine.getCommands().filter((c) => c.reapplyOf !== undefined)).have.length(1);
  });

  it('bad options are refused, naming what and where', async () => {
    const { central } = await startCentral();
    const site = new Site({ siteId: 't', onError: () => {} });
    peers.sites.push(site);
    should(
      () =>
        new OcppChargers(site, central, [
          { identity: 'CP1', assetId: 'ev1', onDeviation: 'other' as never },
        ]),
    ).throw('charger [0] (CP1): onDeviation must be report, reapply or reapply-other-unit');
    should(
      () =>
        new ChargePointSimulator({
          endpoint: 'ws://127.0.0.1:1/ocpp',
          identity: 'CP1',
          protocol: 'ocpp1.6',
          honourUnit: 'kW' as never,
        }),
    ).throw('honourUnit must be W or A, got kW');
  });
});
