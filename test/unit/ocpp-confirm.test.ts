import should from 'should';
import type { CapabilityEvent } from '../../src/adapters/ocpp/chargers';
import { OcppChargers, type OcppChargersOptions } from '../../src/adapters/ocpp/chargers';
import { agrees, compositeCall, limitInForce } from '../../src/adapters/ocpp/confirm';
import type { ChargerConfig, OcppVersion } from '../../src/adapters/ocpp/translate';
import { type Command, CommandStatus } from '../../src/commands';
import { ChargePointSimulator, type ChargePointSimulatorOptions } from '../../src/sim/charge-point';
import { Site } from '../../src/site';
import { closePeers, peers, startCentral, until } from '../helpers/ocpp-peers';

// Verified dispatch (issue 13) on loopback sockets, against the simulator and its quirks:
// a limit the charger accepted is confirmed with GetCompositeSchedule; a charger without it
// falls back to "accepted", said once; one without smart charging is learned once, until it
// boots again.

const sims: ChargePointSimulator[] = [];
afterEach(async () => {
  await Promise.all(sims.splice(0).map((s) => s.stop()));
  await closePeers();
});

type Event = Parameters<NonNullable<OcppChargersOptions['onEvent']>>[0];

async function setup(
  protocol: OcppVersion,
  simOptions: Partial<ChargePointSimulatorOptions> = {},
  config: Partial<ChargerConfig> = {},
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
    [{ identity: 'CP001', assetId: 'ev1', ...config }],
    { reapplyDelayMs: 20, onEvent: (e) => events.push(e) },
  );
  fleet.start();
  site.start();
  const sim = new ChargePointSimulator({
    endpoint: `ws://127.0.0.1:${port}/ocpp`,
    identity: 'CP001',
    protocol,
    meterIntervalMs: 0,
    backoff: { initialDelay: 20, maxDelay: 100 },
    ...simOptions,
  });
  sims.push(sim);
  const calls: string[] = [];
  sim.on('call', (method: string) => calls.push(method));
  await sim.start();
  await until(() => site.getStateMachine('ev1')?.currentState === 'AVAILABLE', 'AVAILABLE');
  const capabilities = () =>
    events.filter((e): e is CapabilityEvent & { assetIds: string[] } => e.type === 'capability');
  /** Submits a setpoint and waits until it ends. */
  const run = async (valueKw: number, type = 'SET_CHARGE_RATE'): Promise<Command> => {
    const [cmd] = site.submit({ assetId: 'ev1', type, valueKw } as never);
    if (!cmd) throw new Error('not submitted');
    await until(
      () => cmd.status === CommandStatus.COMPLETED || cmd.status === CommandStatus.FAILED,
      `${valueKw} kW ended`,
    );
    return cmd;
  };
  return { site, fleet, sim, calls, events, capabilities, run };
}

describe('OCPP verified dispatch (loopback, real sockets)', () => {
  for (const protocol of ['ocpp1.6', 'ocpp2.0.1'] as OcppVersion[]) {
    describe(protocol, () => {
      it('a limit that the composite schedule applies is COMPLETED (W, A, and a station-wide limit)', async () => {
        const { sim, calls, run, capabilities } = await setup(protocol);
        const a = await run(7.4);
        should(a.status).equal(CommandStatus.COMPLETED);
        should(sim.activeLimitW).equal(7400);
        should(calls.filter((m) => m === 'GetCompositeSchedule')).have.length(1);
        const b = await run(5, 'SET_POWER_LIMIT');
        should(b.status).equal(CommandStatus.COMPLETED);
        should(calls.filter((m) => m === 'GetCompositeSchedule')).have.length(2);
        should(capabilities()).have.length(0);
      });

      it('limits in A are compared in A, within the 0.1 A they are sent with', async () => {
        const { sim, run } = await setup(protocol, {}, { unit: 'A', phases: 3, voltage: 230 });
        const a = await run(7.4); // 10.7 A
        should(a.status).equal(CommandStatus.COMPLETED);
        should(sim.activeLimitW).be.approximately(10.7 * 690, 0.01);
      });

      it('a charger that accepts and applies nothing (ignore-profile) is FAILED, final, with both values', async () => {
        const { run, calls } = await setup(protocol, { quirk: 'ignore-profile' });
        const a = await run(7.4);
        should(a.status).equal(CommandStatus.FAILED);
        should(a.attempts).equal(1);
        should(a.lastError).equal(
          'charger CP001 accepted 7400 W but its composite schedule applies 11000 W',
        );
        should(calls.filter((m) => m === 'SetChargingProfile')).have.length(1);
      });

      it('a minimum current raises a low limit: FAILED with both values in A and W', async () => {
        const { run } = await setup(protocol, { minCurrentA: 6 }, { unit: 'A' });
        const ok = await run(6.9); // 10 A
        should(ok.status).equal(CommandStatus.COMPLETED);
        const low = await run(2.76); // 4 A
        should(low.status).equal(CommandStatus.FAILED);
        should(low.lastError).equal(
          'charger CP001 accepted 4 A (2760 W) but its composite schedule applies 6 A (4140 W)',
        );
      });

      it('confirm: accepted does not ask: a charger that ignores the profile is COMPLETED', async () => {
        const { run, calls } = await setup(
          protocol,
          { quirk: 'ignore-profile' },
          { confirm: 'accepted' },
        );
        should((await run(7.4)).status).equal(CommandStatus.COMPLETED);
        should(calls).not.containEql('GetCompositeSchedule');
      });

      it('NotImplemented to GetCompositeSchedule: COMPLETED as accepted, said once, not asked again', async () => {
        const { run, calls, capabilities, site } = await setup(protocol, {
          compositeSchedule: false,
        });
        for (const kw of [3, 4, 5]) should((await run(kw)).status).equal(CommandStatus.COMPLETED);
        should(calls.filter((m) => m === 'GetCompositeSchedule')).have.length(1);
        should(calls.filter((m) => m === 'SetChargingProfile')).have.length(3);
        const told = capabilities();
        should(told).have.length(1);
        should(told[0]).match({
          type: 'capability',
          identity: 'CP001',
          capability: 'compositeSchedule',
          value: false,
          answer: 'NotImplemented',
          assetIds: ['ev1'],
        });
        should(site.assets.get('ev1')?.capabilities.get('compositeSchedule')).equal(false);
      });

      it('no smart charging is learned once, fails later setpoints without a call, and is forgotten on reboot', async () => {
        const { run, calls, capabilities, sim, fleet, site } = await setup(protocol, {
          smartCharging: false,
        });
        const a = await run(7.4);
        should(a.status).equal(CommandStatus.FAILED);
        should(a.lastError).match(
          /CP001 does not support smart charging \(answered NotImplemented/,
        );
        should(calls.filter((m) => m === 'SetChargingProfile')).have.length(1);
        const b = await run(5);
        should(b.status).equal(CommandStatus.FAILED);
        should(b.lastError).equal(
          'charger CP001 does not support smart charging (answered NotImplemented to SetChargingProfile); not sent',
        );
        should(b.attempts).equal(1);
        should(calls.filter((m) => m === 'SetChargingProfile')).have.length(1);
        should(capabilities()).have.length(1);
        should(capabilities()[0]).match({ capability: 'smartCharging', value: false });
        should(fleet.limitations()).eql(['CP001: no smart charging']);

        // It boots again: forgotten, the next setpoint is sent (and learned again).
        const booted = new Promise((r) => sim.once('rebooting', r));
        await sim.reboot({ downMs: 10 });
        await booted;
        await until(
          () => site.assets.get('ev1')?.capabilities.get('smartCharging') === undefined,
          'forgotten on boot',
        );
        should(fleet.limitations()).eql([]);
        await until(() => site.getStateMachine('ev1')?.currentState === 'AVAILABLE', 'back');
        const before = calls.filter((m) => m === 'SetChargingProfile').length;
        const c = await run(6);
        should(c.lastError).match(/answered NotImplemented to SetChargingProfile\)$/);
        should(calls.filter((m) => m === 'SetChargingProfile')).have.length(before + 1);
        should(capabilities()).have.length(2);
      });
    });
  }

  it('a profile applied only after a delay: the composite schedule still says the old limit, FAILED', async () => {
    const { run, sim } = await setup('ocpp1.6', { applyDelayMs: 30_000 });
    const a = await run(7.4);
    should(a.status).equal(CommandStatus.FAILED);
    should(a.lastError).equal(
      'charger CP001 accepted 7400 W but its composite schedule applies 11000 W',
    );
    should(sim.activeLimitW).equal(null); // accepted, not applied yet
  });
});

describe('OCPP composite schedule answers', () => {
  const cfg = { identity: 'CP001', assetId: 'ev1' };
  it('asks for connector / EVSE, duration and unit in each version', () => {
    should(compositeCall('ocpp1.6', 0, 'A').params).eql({
      connectorId: 0,
      duration: 60,
      chargingRateUnit: 'A',
    });
    should(compositeCall('ocpp2.0.1', 1, 'W').params).eql({
      duration: 60,
      evseId: 1,
      chargingRateUnit: 'W',
    });
  });

  it('reads the first period of a 1.6 or 2.0.1 answer, converting the other unit', () => {
    const periods = [
      { startPeriod: 0, limit: 16 },
      { startPeriod: 30, limit: 6 },
    ];
    const v16 = {
      status: 'Accepted',
      chargingSchedule: { chargingRateUnit: 'A', chargingSchedulePeriod: periods },
    };
    const v201 = {
      status: 'Accepted',
      schedule: { chargingRateUnit: 'A', chargingSchedulePeriod: periods },
    };
    should(limitInForce(v16, 'A', cfg)).eql({ limit: 16 });
    should(limitInForce(v201, 'A', cfg)).eql({ limit: 16 });
    // 16 A x 230 V x 3 phases; 1 phase where the period says so.
    should(limitInForce(v16, 'W', cfg)).eql({ limit: 11040 });
    const onePhase = {
      status: 'Accepted',
      schedule: {
        chargingRateUnit: 'A',
        chargingSchedulePeriod: [{ startPeriod: 0, limit: 16, numberPhases: 1 }],
      },
    };
    should(limitInForce(onePhase, 'W', cfg)).eql({ limit: 3680 });
  });

  it('says why there is no limit: Rejected, no period', () => {
    should(limitInForce({ status: 'Rejected' }, 'W', cfg)).eql({
      error: 'GetCompositeSchedule answered Rejected',
    });
    should(limitInForce({ status: 'Accepted' }, 'W', cfg)).eql({
      error: 'GetCompositeSchedule gave no schedule period',
    });
    should(limitInForce(null, 'W', cfg)).have.property('error');
  });

  it('agrees within the 0.1 that limits are sent with', () => {
    should(agrees(7400, 7400.1)).be.true();
    should(agrees(10.7, 10.6)).be.true();
    should(agrees(10.7, 10.5)).be.false();
    should(agrees(7400, 11000)).be.false();
  });
});
