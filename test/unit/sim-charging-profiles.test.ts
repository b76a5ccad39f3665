import should from 'should';
import {
  composite,
  limitAt,
  nextChange,
  type ProfileContext,
  profileProblem,
  type SimChargingProfile,
  withProfile,
} from '../../src/sim/charging-profiles';

// The simulator's charging profiles as pure functions: what a charger keeps, replaces and
// follows, which the failsafe chain relies on (a station maximum that steps down on its own,
// Tx profiles that expire at validTo).

const T = Date.parse('2025-06-02T08:00:00Z');
const ctx: ProfileContext = { tx: { id: 7, startedAt: T }, voltage: 230, phases: 3 };

function profile(
  over: Partial<SimChargingProfile>,
  periods: [number, number][] = [[0, 10000]],
): SimChargingProfile {
  return {
    id: 1,
    purpose: 'TxDefaultProfile',
    stackLevel: 0,
    kind: 'Absolute',
    target: 1,
    receivedAt: T,
    chargingSchedule: {
      startSchedule: new Date(T).toISOString(),
      chargingRateUnit: 'W',
      chargingSchedulePeriod: periods.map(([startPeriod, limit]) => ({ startPeriod, limit })),
    },
    ...over,
  };
}

const station = (periods: [number, number][], id = 1001) =>
  profile({ id, purpose: 'ChargePointMaxProfile', target: 0 }, periods);

describe('sim: charging profiles', () => {
  it('a two-period station maximum caps from its start and steps down at its second period, for good', () => {
    const ps = [
      profile({}, [[0, 10000]]),
      station([
        [0, 15000],
        [60, 4000],
      ]),
    ];
    should(limitAt(ps, T - 1, ctx)).equal(null); // neither has started
    should(limitAt(ps, T, ctx)).equal(10000);
    should(limitAt(ps, T + 59_999, ctx)).equal(10000);
    should(limitAt(ps, T + 60_000, ctx)).equal(4000);
    should(limitAt(ps, T + 86_400_000, ctx)).equal(4000); // no duration: the last period lasts
    should(nextChange(ps, T, ctx)).equal(T + 60_000);
    should(nextChange(ps, T + 60_000, ctx)).equal(undefined);
    should(composite(ps, T, 120, ctx, 22000)).eql([
      { startPeriod: 0, limitW: 10000 },
      { startPeriod: 60, limitW: 4000 },
    ]);
  });

  it('a new profile replaces one with the same id, or the same purpose and stack level; never stacks', () => {
    let ps = withProfile([], station([[0, 15000]]));
    ps = withProfile(ps, station([[0, 9000]]));
    should(ps).have.length(1);
    ps = withProfile(ps, station([[0, 8000]], 1002)); // another id, same purpose and level
    should(ps.map((p) => p.id)).eql([1002]);
    ps = withProfile(ps, { ...station([[0, 3000]], 1002), stackLevel: 1 }); // same id
    should(ps).have.length(1);
    should(limitAt(ps, T, ctx)).equal(3000);
    ps = withProfile(ps, profile({ id: 1 }));
    should(ps).have.length(2); // a Tx default profile beside the station maximum
  });

  it('a Tx profile ends at validTo: the TxDefaultProfile, then only the station maximum apply', () => {
    const validTo = new Date(T + 30_000).toISOString();
    const ps = [
      profile({ id: 2, purpose: 'TxProfile', transactionId: 7, validTo }, [[0, 3000]]),
      profile({ id: 1, validTo: new Date(T + 45_000).toISOString() }, [[0, 6000]]),
      station([
        [0, 22000],
        [40, 4000],
      ]),
    ];
    should(limitAt(ps, T + 29_999, ctx)).equal(3000);
    should(limitAt(ps, T + 30_000, ctx)).equal(6000);
    should(limitAt(ps, T + 40_000, ctx)).equal(4000);
    should(limitAt(ps, T + 45_000, ctx)).equal(4000); // not the rating, not unlimited
    should(nextChange(ps, T, ctx)).equal(T + 30_000);
    // Another transaction's TxProfile is not in force.
    should(limitAt(ps, T, { ...ctx, tx: { id: 8, startedAt: T } })).equal(6000);
  });

  it('refuses what a charger refuses: periods not from 0 or not ascending, negative limits, validTo before validFrom', () => {
    should(profileProblem(station([[0, 1]]))).equal(null);
    should(profileProblem(station([[5, 1]]))).match(/does not start at 0/);
    should(
      profileProblem(
        station([
          [0, 1],
          [10, 2],
          [10, 3],
        ]),
      ),
    ).match(/ascending/);
    should(profileProblem(station([[0, -1]]))).match(/>= 0/);
    should(profileProblem(station([]))).match(/no schedule period/);
    should(
      profileProblem(
        profile({ validFrom: new Date(T).toISOString(), validTo: new Date(T).toISOString() }),
      ),
    ).match(/validTo is not after validFrom/);
    should(profileProblem(profile({ validTo: 'soon' }))).match(/bad date soon/);
  });
});
