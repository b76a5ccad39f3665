import should from 'should';
import { OcppChargers } from '../../src/adapters/ocpp/chargers';
import type { ChargerConfig } from '../../src/adapters/ocpp/translate';
import { CommandStatus } from '../../src/commands';
import { type AssetCompliant, type AssetDeviation, EventType } from '../../src/event-bus';
import { Site } from '../../src/site';
import {
  boot,
  type Client,
  charger,
  closePeers,
  on,
  peers,
  startCentral,
  until,
} from '../helpers/ocpp-peers';

// Compliance of EV chargers over real sockets: a real ocpp-rpc charger (strict mode) reports
// the power it draws in MeterValues (1.6) or TransactionEvent meter values (2.0.1); the site
// checks it against the limit in force. A short grace; every wait bounded.

afterEach(closePeers);

async function setup(protocol: 'ocpp1.6' | 'ocpp2.0.1', extra: Partial<ChargerConfig> = {}) {
  const { central, port } = await startCentral();
  const site = new Site({
    siteId: 't',
    autoDispatch: true,
    config: { commandTimeoutSeconds: 5, retryBaseSeconds: 0.05 },
    compliance: { graceMs: { 'ev-limit': 100 } },
    onError: () => {},
  });
  peers.sites.push(site);
  const fleet = new OcppChargers(site, central, [{ identity: 'CP1', assetId: 'ev1', ...extra }], {
    reapplyDelayMs: 20,
  });
  fleet.start();
  site.start();
  const deviations: AssetDeviation[] = [];
  const compliant: AssetCompliant[] = [];
  site.eventBus.subscribe(EventType.ASSET_DEVIATION, (e) => deviations.push(e.payload));
  site.eventBus.subscribe(EventType.ASSET_COMPLIANT, (e) => compliant.push(e.payload));
  const c = charger(port, 'CP1', protocol);
  const profiles: unknown[] = [];
  on(c, 'SetChargingProfile', ({ params }) => {
    profiles.push(params);
    return { status: 'Accepted' };
  });
  on(c, 'TriggerMessage', () => ({ status: 'Accepted' }));
  await boot(c, protocol, protocol === 'ocpp1.6' ? 'Charging' : 'Occupied');
  return { site, c, deviations, compliant, profiles };
}

const meter16 = (c: Client, w: number) =>
  c.call('MeterValues', {
    connectorId: 1,
    meterValue: [
      {
        timestamp: new Date().toISOString(),
        sampledValue: [{ value: String(w), measurand: 'Power.Active.Import', unit: 'W' }],
      },
    ],
  });

let seqNo = 0;
const meter201 = (c: Client, w: number) =>
  c.call('TransactionEvent', {
    eventType: 'Updated',
    timestamp: new Date().toISOString(),
    triggerReason: 'MeterValuePeriodic',
    seqNo: seqNo++,
    transactionInfo: { transactionId: 'tx1', chargingState: 'Charging' },
    evse: { id: 1, connectorId: 1 },
    meterValue: [
      {
        timestamp: new Date().toISOString(),
        sampledValue: [
          { value: w, measurand: 'Power.Active.Import', unitOfMeasure: { unit: 'W' } },
        ],
      },
    ],
  });

/** Sends meter values every 20 ms until `cond` holds (at most `rounds` of them). */
async function meterUntil(
  send: () => Promise<unknown>,
  cond: () => boolean,
  what: string,
  rounds = 200,
) {
  for (let i = 0; i < rounds; i++) {
    await send();
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`never happened: ${what}`);
}

describe('compliance of EV chargers (loopback, real ocpp-rpc charger)', () => {
  it('1.6: an EV drawing less than its limit complies; drawing more deviates, then complies again', async () => {
    const { site, c, deviations, compliant } = await setup('ocpp1.6');
    const [cmd] = site.submit({ assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 7.4 });
    await until(() => cmd?.status === CommandStatus.COMPLETED, 'limit COMPLETED');
    // Less than the limit, well past the grace: the car decides, no deviation.
    let n = 0;
    await meterUntil(
      () => meter16(c, 3000),
      () => ++n >= 15,
      'fifteen readings at 3 kW',
    );
    should(site.compliance.stateOf('ev1')).equal('compliant');
    should(deviations).have.length(0);
    await meterUntil(
      () => meter16(c, 11000),
      () => deviations.length === 1,
      'ASSET_DEVIATION',
    );
    should(deviations[0]).eql({
      assetId: 'ev1',
      setpointKw: 7.4,
      measuredKw: 11,
      since: deviations[0]?.since,
      reason: '11 kW > 7.4 kW limit',
    });
    await meterUntil(
      () => meter16(c, 7000),
      () => compliant.length === 1,
      'ASSET_COMPLIANT',
    );
    should(compliant[0]).containDeep({ assetId: 'ev1', setpointKw: 7.4, measuredKw: 7 });
    should(deviations).have.length(1);
  });

  it("2.0.1 TransactionEvent meter values; onDeviation 'reapply' sends the limit again once", async () => {
    const { site, c, deviations, compliant, profiles } = await setup('ocpp2.0.1', {
      onDeviation: 'reapply',
    });
    const [cmd] = site.submit({ assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 7.4 });
    await until(() => cmd?.status === CommandStatus.COMPLETED, 'limit COMPLETED');
    const before = profiles.length;
    await meterUntil(
      () => meter201(c, 11000),
      () => deviations.length === 1,
      'ASSET_DEVIATION',
    );
    await until(() => profiles.length === before + 1, 'the limit sent again');
    // It goes on drawing 11 kW past the new grace: the same episode, nothing more sent.
    let n = 0;
    await meterUntil(
      () => meter201(c, 11000),
      () => ++n >= 15,
      'fifteen more readings',
    );
    should(profiles.length).equal(before + 1);
    should(deviations).have.length(1);
    await meterUntil(
      () => meter201(c, 7400),
      () => compliant.length === 1,
      'ASSET_COMPLIANT',
    );
  });

  it('connector 0 (the whole charge point) is not an EV: its meter values are not checked', async () => {
    const { site, c, deviations } = await setup('ocpp1.6');
    const [cmd] = site.submit({ assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 7.4 });
    await until(() => cmd?.status === CommandStatus.COMPLETED, 'limit COMPLETED');
    for (let i = 0; i < 15; i++) {
      await c.call('MeterValues', {
        connectorId: 0,
        meterValue: [
          {
            timestamp: new Date().toISOString(),
            sampledValue: [{ value: '22000', measurand: 'Power.Active.Import', unit: 'W' }],
          },
        ],
      });
      await new Promise((r) => setTimeout(r, 20));
    }
    should(deviations).have.length(0);
    should(site.compliance.stateOf('ev1')).equal('unknown');
  });
});
