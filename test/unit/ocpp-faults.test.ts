import should from 'should';
import { OcppChargers } from '../../src/adapters/ocpp/chargers';
import type { OcppVersion } from '../../src/adapters/ocpp/translate';
import { CommandStatus } from '../../src/commands';
import { Site } from '../../src/site';
import {
  boot,
  charger,
  closePeers,
  limitOf,
  on,
  peers,
  siteWith,
  startCentral,
  until,
} from '../helpers/ocpp-peers';

// The faults of the field on loopback sockets (issue: fault-proof): a charger that reboots or
// reconnects while later slots are pending, one that reconnects without saying anything, one
// that never answers, and a call that waits behind a slow one until its slot has ended.

afterEach(closePeers);

/** Two slots of one schedule for ev1: `first` kW from now for `slotMs`, then `second` kW. */
function twoSlots(first: number, second: number, slotMs: number) {
  const now = Date.now();
  return [
    {
      id: 's:ev1:0',
      scheduleId: 's',
      assetId: 'ev1',
      type: 'SET_CHARGE_RATE',
      valueKw: first,
      scheduledAt: now,
      validUntil: now + slotMs,
    },
    {
      id: 's:ev1:1',
      scheduleId: 's',
      assetId: 'ev1',
      type: 'SET_CHARGE_RATE',
      valueKw: second,
      scheduledAt: now + slotMs,
    },
  ] as const;
}

describe('OCPP faults (loopback, real sockets)', () => {
  it('a re-apply that throws on its timer is reported, not thrown: the process goes on', async () => {
    const { central, port } = await startCentral();
    const site = new Site({ siteId: 't', autoDispatch: true, onError: () => {} });
    peers.sites.push(site);
    site.reapply = () => {
      throw new Error('boom');
    };
    const errors: string[] = [];
    const fleet = new OcppChargers(site, central, [{ identity: 'CP1', assetId: 'ev1' }], {
      reapplyDelayMs: 10,
      onError: (e) => errors.push(e.message),
    });
    fleet.start();
    site.start();
    await boot(charger(port, 'CP1', 'ocpp1.6'), 'ocpp1.6');
    // A re-apply is asked for on connect and on boot: one timer each when they are more than
    // reapplyDelayMs apart (a loaded machine), else one: every one reported, none thrown.
    await until(() => errors.length >= 1, 'the error reported');
    should(errors.length).be.within(1, 2);
    should(errors.every((e) => e === 'boom')).be.true();
    fleet.stop(true);
  });

  for (const protocol of ['ocpp1.6', 'ocpp2.0.1'] as OcppVersion[]) {
    describe(protocol, () => {
      it('a charger that reboots while a later slot is pending gets the setpoint in force again, as a tracked command', async () => {
        const { central, port } = await startCentral();
        const { site } = siteWith(central, [{ identity: 'CP1', assetId: 'ev1' }]);
        const limits: string[] = [];
        const accept = ({ params }: { params?: unknown }) => {
          limits.push(limitOf(params));
          return { status: 'Accepted' };
        };
        let cp = charger(port, 'CP1', protocol);
        on(cp, 'SetChargingProfile', accept);
        await boot(cp, protocol);
        await until(() => site.getStateMachine('ev1')?.currentState === 'AVAILABLE', 'AVAILABLE');
        const [slot0, slot1] = site.submit([...twoSlots(6, 9, 60_000)]);
        await until(() => slot0?.status === CommandStatus.COMPLETED, 'slot 0 COMPLETED');
        await cp.close({ force: true });
        await until(() => site.getStateMachine('ev1')?.currentState === 'UNAVAILABLE', 'offline');
        cp = charger(port, 'CP1', protocol);
        on(cp, 'SetChargingProfile', accept);
        await boot(cp, protocol);
        await until(() => limits.length === 2, 'the setpoint in force sent again');
        should(limits).eql(['6000', '6000']);
        should(slot1?.status).equal(CommandStatus.PENDING);
        const again = site.engine.getCommands().find((c) => c.reapplyOf === 's:ev1:0');
        should(again).be.ok();
        await until(() => again?.status === CommandStatus.COMPLETED, 're-apply COMPLETED');
        should(again?.validUntil?.getTime()).equal(slot1?.scheduledAt.getTime());
        should(again?.history[0]?.reason).match(/re-apply s:ev1:0: charger (connected|booted)/);
      });

      it('a charger that reconnects without boot or status is not held: asked for its status, new commands go out', async () => {
        const { central, port } = await startCentral();
        const { site } = siteWith(central, [{ identity: 'CP1', assetId: 'ev1' }]);
        const limits: string[] = [];
        const triggers: unknown[] = [];
        const accept = ({ params }: { params?: unknown }) => {
          limits.push(limitOf(params));
          return { status: 'Accepted' };
        };
        let cp = charger(port, 'CP1', protocol);
        on(cp, 'SetChargingProfile', accept);
        await boot(cp, protocol);
        await until(() => site.getStateMachine('ev1')?.currentState === 'AVAILABLE', 'AVAILABLE');
        const [first] = site.submit({ assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 6 });
        await until(() => first?.status === CommandStatus.COMPLETED, 'first COMPLETED');
        await cp.close({ force: true });
        await until(() => site.getStateMachine('ev1')?.currentState === 'UNAVAILABLE', 'offline');
        // A network blip: the charger comes back and says nothing (no boot, no status).
        cp = charger(port, 'CP1', protocol);
        on(cp, 'SetChargingProfile', accept);
        on(cp, 'TriggerMessage', ({ params }) => {
          triggers.push(params);
          return { status: 'Accepted' };
        });
        await boot(cp, protocol, null);
        await until(() => site.getStateMachine('ev1')?.currentState === 'AVAILABLE', 'available');
        await until(() => triggers.length === 1, 'TriggerMessage StatusNotification');
        should(JSON.stringify(triggers[0])).match(/"requestedMessage":"StatusNotification"/);
        // It kept its profile, but it cannot be known: the setpoint in force goes again.
        await until(() => limits.length === 2, 're-applied');
        const [next] = site.submit({ assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 9 });
        await until(() => next?.status === CommandStatus.COMPLETED, 'new command COMPLETED');
        should(next?.holdReason).be.null();
        should(limits).eql(['6000', '6000', '9000']);
      });

      it('a redeploy of the adapter alone (the charger stays connected) re-applies the setpoint in force', async () => {
        const { central, port } = await startCentral();
        const { site, fleet } = siteWith(central, [{ identity: 'CP1', assetId: 'ev1' }]);
        const limits: string[] = [];
        const cp = charger(port, 'CP1', protocol);
        on(cp, 'SetChargingProfile', ({ params }) => {
          limits.push(limitOf(params));
          return { status: 'Accepted' };
        });
        await boot(cp, protocol);
        await until(() => site.getStateMachine('ev1')?.currentState === 'AVAILABLE', 'AVAILABLE');
        const [c] = site.submit({ assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 6 });
        await until(() => c?.status === CommandStatus.COMPLETED, 'COMPLETED');
        await until(() => limits.length >= 1, 'sent');
        const before = limits.length;
        fleet.stop();
        const next = new OcppChargers(site, central, [{ identity: 'CP1', assetId: 'ev1' }], {
          reapplyDelayMs: 20,
        });
        next.start();
        await until(() => limits.length === before + 1, 're-applied after the redeploy');
        should(limits.at(-1)).equal('6000');
        const again = site.engine.getCommands().filter((x) => x.reapplyOf === c?.id);
        should(again.map((x) => x.history[0]?.reason)).eql([`re-apply ${c?.id}: adapter started`]);
        next.stop(true);
      });

      it('a charger that never answers: the command ends TIMED_OUT, not FAILED', async () => {
        const { central, port } = await startCentral({ callTimeoutMs: 100 });
        const { site } = siteWith(central, [{ identity: 'CP1', assetId: 'ev1' }], {
          maxRetries: 1,
        });
        const cp = charger(port, 'CP1', protocol);
        let calls = 0;
        on(cp, 'SetChargingProfile', () => {
          calls++;
          return new Promise(() => {});
        });
        await boot(cp, protocol);
        await until(() => site.getStateMachine('ev1')?.currentState === 'AVAILABLE', 'AVAILABLE');
        const [c] = site.submit({ assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 5 });
        await until(() => c?.status === CommandStatus.TIMED_OUT || c?.status === 'FAILED', 'end');
        should(c?.status).equal(CommandStatus.TIMED_OUT);
        should(c?.attempts).equal(2);
        should(calls).equal(2);
      });

      it('a call that waits behind a slow one until its slot has ended is never sent', async () => {
        const { central, port } = await startCentral({ callTimeoutMs: 4000 });
        const { site } = siteWith(central, [{ identity: 'CP1', assetId: 'ev1' }]);
        const cp = charger(port, 'CP1', protocol);
        const limits: string[] = [];
        let release: () => void = () => {};
        on(cp, 'SetChargingProfile', ({ params }) => {
          limits.push(limitOf(params));
          if (limits.length > 1) return { status: 'Accepted' };
          return new Promise((resolve) => {
            release = () => resolve({ status: 'Accepted' });
          });
        });
        await boot(cp, protocol);
        await until(() => site.getStateMachine('ev1')?.currentState === 'AVAILABLE', 'AVAILABLE');
        const [slow] = site.submit({ assetId: 'ev1', type: 'SET_POWER_LIMIT', valueKw: 11 });
        await until(() => limits.length === 1, 'the slow call is on the wire');
        const now = Date.now();
        const [short] = site.submit({
          assetId: 'ev1',
          type: 'SET_CHARGE_RATE',
          valueKw: 7,
          scheduledAt: now,
          validUntil: now + 150,
        });
        await until(() => Date.now() > now + 200, 'its slot has ended');
        release();
        await until(() => slow?.status === CommandStatus.COMPLETED, 'slow COMPLETED');
        await until(() => short?.status === CommandStatus.CANCELLED, 'short CANCELLED');
        should(short?.lastError).match(/^expired: .*not sent/);
        should(limits).eql(['11000']);
      });
    });
  }
});
