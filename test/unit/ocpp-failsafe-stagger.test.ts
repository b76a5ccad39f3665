import should from 'should';
import { BUSY_CALLS, refreshStagger } from '../../src/adapters/ocpp/failsafe';
import { captureTimeouts, failsafeOnCP1 } from '../helpers/failsafe-unit';

// The failsafe refreshes of a fleet spread over the interval (issue 17): the first refresh
// after a fresh send comes earlier by a fraction fixed per identity, the next ones a whole
// interval apart; never later than failsafeAfterS / 3.

describe('OCPP failsafe: refreshes of a fleet spread over the interval (unit)', () => {
  it('the stagger is fixed per identity, from 0 to 1/2, and spread over a fleet', () => {
    should(refreshStagger('CP00001')).equal(refreshStagger('CP00001'));
    const xs = Array.from({ length: 10_000 }, (_, i) =>
      refreshStagger(`CP${String(i + 1).padStart(5, '0')}`),
    );
    for (const x of xs) should(x >= 0 && x < 0.5).be.true();
    // Each fifth of the range holds 10 % to 30 % of 10,000 sequential identities (20 % expected).
    for (let b = 0; b < 5; b++) {
      const n = xs.filter((x) => x >= b * 0.1 && x < (b + 1) * 0.1).length;
      should(n).be.within(1000, 3000);
    }
  });

  it('first refresh after a send: the interval less its stagger; then whole intervals', async () => {
    const fs = failsafeOnCP1({ call: async () => ({ status: 'Accepted' }) }, 30);
    // The timers it sets, not run: each is fired by hand below.
    const { timers, restore } = captureTimeouts();
    try {
      fs.start();
      fs.sendNow('CP1');
      should(timers).have.length(1);
      const first = timers[0]?.ms ?? 0;
      should(first).equal(10_000 * (1 - refreshStagger('CP1')));
      should(first).be.within(5000, 10_000);
      timers[0]?.fn(); // the refresh: the next one a whole interval later
      should(timers).have.length(2);
      should(timers[1]?.ms).equal(10_000);
      timers[1]?.fn();
      should(timers[2]?.ms).equal(10_000);
      fs.refresh('ev1'); // a change of the share: sent now (0), a fresh send again
      should(timers[3]?.ms).equal(0);
      timers[3]?.fn();
      should(timers[4]?.ms).equal(first);
    } finally {
      restore();
      fs.stop();
    }
  });

  it('a refresh that falls due while the central system is busy waits, at most half an interval, then goes', async () => {
    const busy = { waitingCalls: 0, callsInFlight: 0 };
    const calls: string[] = [];
    const fs = failsafeOnCP1(
      {
        get waitingCalls() {
          return busy.waitingCalls;
        },
        get callsInFlight() {
          return busy.callsInFlight;
        },
        call: async (_id: string, method: string) => {
          calls.push(method);
          return { status: 'Accepted' };
        },
      },
      60, // an interval of 20 s: waits of 1 s, 10 s in all at most
    );
    const { timers, restore } = captureTimeouts();
    const fire = async () => {
      (timers.at(-1) as { fn: () => void }).fn();
      await Promise.resolve();
    };
    try {
      fs.start();
      fs.sendNow('CP1'); // a fresh send never waits
      should(calls).have.length(1);
      // Calls wait for a turn (a slot start's setpoints): the refresh waits 1 s, ten times.
      busy.waitingCalls = 500;
      for (let k = 0; k < 10; k++) {
        await fire();
        should(calls).have.length(1);
        should(timers.at(-1)?.ms).equal(1000);
      }
      // Half an interval waited: it goes although the central system is still busy.
      await fire();
      should(calls).have.length(2);
      should(timers.at(-1)?.ms).equal(20_000);
      // Answers awaited for BUSY_CALLS calls: busy too; one less: not busy.
      busy.waitingCalls = 0;
      busy.callsInFlight = BUSY_CALLS;
      await fire();
      should(calls).have.length(2);
      should(timers.at(-1)?.ms).equal(1000);
      busy.callsInFlight = BUSY_CALLS - 1;
      await fire();
      should(calls).have.length(3);
      should(timers.at(-1)?.ms).equal(20_000);
      // The wait starts again from 0 for the next refresh.
      busy.callsInFlight = BUSY_CALLS;
      await fire();
      should(calls).have.length(3);
      should(timers.at(-1)?.ms).equal(1000);
    } finally {
      restore();
      fs.stop();
    }
  });
});
