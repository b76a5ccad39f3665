import should from 'should';
import type { BatteryConfig } from '../../src/adapters/modbus/batteries';
import { type Command, CommandStatus } from '../../src/commands';
import { type AssetCompliant, type AssetDeviation, EventType } from '../../src/event-bus';
import { batterySite, closeBatterySites, until } from '../helpers/battery-site';

// Compliance end to end over a real Modbus TCP socket: the simulated battery runs the wrong
// way, the adapter's telemetry feeds the site's check, which publishes ASSET_DEVIATION, then
// ASSET_COMPLIANT once the battery is fixed. Real time with short periods and a short grace;
// every wait bounded; nothing asserts on durations.

afterEach(closeBatterySites);

/** A battery that runs the wrong way (50 kW each way), polled every 50 ms, a 150 ms grace. */
async function setup(battery: Partial<BatteryConfig> = {}) {
  const { sim, site, telemetry } = await batterySite({
    sim: { wrongWay: true },
    batteries: [{ ratedChargeKw: 50, ratedDischargeKw: 50, pollIntervalMs: 50, ...battery }],
    config: { staleStateSeconds: 5 },
    compliance: { graceMs: { battery: 150 } },
  });
  const deviations: AssetDeviation[] = [];
  const compliant: AssetCompliant[] = [];
  site.eventBus.subscribe(EventType.ASSET_DEVIATION, (e) => deviations.push(e.payload));
  site.eventBus.subscribe(EventType.ASSET_COMPLIANT, (e) => compliant.push(e.payload));
  return { sim, site, deviations, compliant, telemetry };
}

describe('compliance over a real Modbus socket (simulated battery)', () => {
  it('a battery running the wrong way: ASSET_DEVIATION, then ASSET_COMPLIANT once it is fixed', async () => {
    const { sim, site, deviations, compliant } = await setup();
    const [c] = site.submit({ assetId: 'b1', type: 'SET_DISCHARGE_RATE', valueKw: 20 });
    await until(() => c?.status === CommandStatus.COMPLETED, 'setpoint COMPLETED');
    should(sim.state(1).powerKw).equal(20); // asked -20 kW, charges 20 kW
    await until(() => deviations.length === 1, 'ASSET_DEVIATION');
    should(deviations[0]).containDeep({ assetId: 'b1', setpointKw: -20, measuredKw: 20 });
    should(deviations[0]?.reason).match(/wrong way/);
    should(Number.isNaN(Date.parse(deviations[0]?.since ?? ''))).be.false();
    should(site.compliance.stateOf('b1')).equal('deviating');
    should(compliant).have.length(0);
    sim.setQuirks({ wrongWay: false });
    await until(() => compliant.length === 1, 'ASSET_COMPLIANT');
    should(compliant[0]).containDeep({ assetId: 'b1', setpointKw: -20, measuredKw: -20 });
    should(compliant[0]?.since).equal(deviations[0]?.since);
    should(compliant[0]?.deviatedForMs).be.above(0);
    should(deviations).have.length(1);
  });

  it("onDeviation 'reapply' re-applies the setpoint once per deviation episode", async () => {
    const { sim, site, deviations, compliant, telemetry } = await setup({ onDeviation: 'reapply' });
    const created: Command[] = [];
    const [c] = site.submit({ assetId: 'b1', type: 'SET_CHARGE_RATE', valueKw: 10 });
    site.eventBus.subscribe(EventType.COMMAND_CREATED, (e) => {
      const cmd = site.engine.getCommand(e.payload.id);
      if (cmd) created.push(cmd);
    });
    await until(() => deviations.length === 1, 'ASSET_DEVIATION');
    await until(() => created.length === 1, 'the re-apply');
    should(created[0]?.reapplyOf).equal(c?.id);
    should(created[0]?.valueKw).equal(10);
    await until(() => created[0]?.status === CommandStatus.COMPLETED, 're-apply COMPLETED');
    // Still running the wrong way past the new setpoint's grace: the same episode, no second
    // re-apply, no second event.
    const seen = telemetry.length;
    await until(() => telemetry.length >= seen + 10, 'ten more readings');
    should(created).have.length(1);
    should(deviations).have.length(1);
    sim.setQuirks({ wrongWay: false });
    await until(() => compliant.length === 1, 'ASSET_COMPLIANT');
    should(compliant[0]?.measuredKw).equal(10);
  });

  it('a battery that follows slowly (followRateKwPerS) complies once it has ramped up', async () => {
    const { sim, site, compliant, telemetry } = await setup();
    sim.setQuirks({ wrongWay: false, followRateKwPerS: 5 });
    const [c] = site.submit({ assetId: 'b1', type: 'SET_CHARGE_RATE', valueKw: 20 });
    await until(() => c?.status === CommandStatus.COMPLETED, 'setpoint COMPLETED');
    should(sim.state(1).powerKw).be.below(20); // not there at once
    sim.tick(1000); // simulated: about 5 kW of 20 after one second (plus real time passing)
    await until(
      () => telemetry.some((t) => (t.powerKw ?? 0) >= 5 && (t.powerKw ?? 0) < 20),
      'a reading on the ramp',
    );
    sim.tick(10_000);
    await until(() => telemetry.some((t) => t.powerKw === 20), 'a reading at 20 kW');
    await until(() => site.compliance.stateOf('b1') === 'compliant', 'compliant');
    should(compliant.length).be.belowOrEqual(1);
  });
});
