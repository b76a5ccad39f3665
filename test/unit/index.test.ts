import should from 'should';
import * as api from '../../src/index';

describe('public API (package root)', () => {
  it('exports everything the foundation issue names', () => {
    const functions = [
      'EventBus',
      'AdapterRegistry',
      'DispatchEngine',
      'convertSchedule',
      'parseSchedule',
      'ScheduleError',
      'StateMachine',
      'InvalidTransition',
      'createEvChargerStateMachine',
      'createBatteryStateMachine',
      'ManualClock',
      'AdapterError',
    ];
    for (const name of functions)
      should(typeof (api as Record<string, unknown>)[name]).equal('function', name);
    should(Object.values(api.CommandType)).containDeep(['SET_CHARGE_RATE', 'SET_DISCHARGE_RATE']);
    should(Object.values(api.CommandStatus)).have.length(7);
    should(api.EVENT_TYPES).have.length(14);
    should(api.EVENT_TYPES).containEql('OPTIMISER_SILENT');
    should(api.EVENT_TYPES).containEql('ASSET_DEVIATION').and.containEql('ASSET_COMPLIANT');
    should(api.EVENT_TYPES).containEql('SETPOINT_LIMITED').and.containEql('LIMITS_CHANGED');
    should(typeof api.SiteLimiter).equal('function');
    should(typeof api.DispatchEngine.restore).equal('function');
  });

  it('exports the site limits core', () => {
    const functions = [
      'validateLimits',
      'LimitsConfigError',
      'failsafeShares',
      'ampsPerKw',
      'MeterReadings',
      'MeterReadingError',
      'LimitSources',
      'CapError',
      'allocate',
      'AllocationError',
      'violations',
      'planChanges',
    ];
    for (const name of functions)
      should(typeof (api as Record<string, unknown>)[name]).equal('function', name);
    should(api.PHASES).eql(['L1', 'L2', 'L3']);
    const limits = api.validateLimits({
      circuits: [{ id: 'grid', importKw: 11 }],
      assets: [{ assetId: 'ev', kind: 'ev', circuit: 'grid', phases: 'L1L2L3', ratingKw: 22 }],
    });
    const sources = new api.LimitSources(limits);
    const loads = new api.MeterReadings(limits).loads(0);
    should(api.allocate(limits, [{ assetId: 'ev', kw: 22 }], loads, sources.effective(0))).eql([
      { assetId: 'ev', askedKw: 22, kw: 11, boundBy: 'circuit grid importKw (config)' },
    ]);
  });

  it('exports the fleet contract, gateway and central client', () => {
    for (const name of [
      'FleetGateway',
      'FleetCentral',
      'siteTopic',
      'assetTopic',
      'eventTopic',
      'telemetryTopic',
    ])
      should(typeof (api as Record<string, unknown>)[name]).equal('function', name);
    should(api.CONTRACT_VERSION).equal(1);
    should(api.DEFAULT_PREFIX).equal('qe/v1');
    should(api.BUFFER_DROPPED).equal('BUFFER_DROPPED');
    should(api.assetTopic('qe/v1', 'depot', 'ev1')).equal('qe/v1/depot/assets/ev1');
  });

  it('the README snippet runs as written', async () => {
    // Keep in step with the "Use the core library" snippet in README.md.
    const { AdapterRegistry, DispatchEngine, EventBus, EventType, ManualClock } = api;
    const clock = new ManualClock('2025-06-02T07:59:00Z');
    const bus = new EventBus({ clock });
    const registry = new AdapterRegistry();
    const sent: string[] = [];
    registry.register('ast_ev_001', {
      protocol: 'console',
      dispatch: (cmd) => {
        sent.push(`${cmd.assetId} ${cmd.type} ${cmd.valueKw} kW`);
        return { success: true };
      },
    });
    const engine = new DispatchEngine({ eventBus: bus, adapterRegistry: registry, clock });
    const done: string[] = [];
    bus.subscribe(EventType.COMMAND_COMPLETED, (e) => done.push(e.payload.id));
    engine.scheduleToCommands(
      {
        columns: ['ev_ev_001_kw', 'price_per_kwh'],
        index: [
          '2025-06-02T08:00:00Z',
          '2025-06-02T09:00:00Z',
          '2025-06-02T10:00:00Z',
          '2025-06-02T11:00:00Z',
        ],
        data: [
          [22, 0.3],
          [22, 0.3],
          [22, 0.31],
          [0, 0.2],
        ],
      },
      { assetMap: { ev_001: 'ast_ev_001' } },
    );
    for (const t of ['2025-06-02T08:00:00Z', '2025-06-02T11:00:00Z']) {
      clock.set(t);
      engine.checkTimeouts();
      for (const cmd of engine.getPendingCommands())
        await engine.dispatchCommand(cmd, registry.get(cmd.assetId));
    }
    should(sent).eql(['ast_ev_001 SET_CHARGE_RATE 22 kW', 'ast_ev_001 SET_CHARGE_RATE 0 kW']);
    should(done).have.length(2);
  });
});
