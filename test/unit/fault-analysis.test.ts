import should from 'should';
import { duplicates } from '../fault/analysis';

describe('fault campaign analysis: duplicates', () => {
  const ev = (at: number, type: string, id: string, reapplyOf?: string) => ({
    at,
    type: `COMMAND_${type}`,
    id,
    ...(reapplyOf ? { reapplyOf } : {}),
  });

  it('counts a command answered before a restart and sent again after it', () => {
    const events = [
      ev(1, 'DISPATCHED', 'a'),
      ev(2, 'ACKNOWLEDGED', 'a'),
      ev(3, 'DISPATCHED', 'b'),
      ev(12, 'DISPATCHED', 'a'),
    ];
    should(duplicates(events, [10])).eql([
      { id: 'a', answeredAt: 2, restartAt: 10, sentAgainAt: 12 },
    ]);
  });

  it('does not count a re-apply (its own id), an unanswered resend, or a retry without a restart', () => {
    const events = [
      ev(1, 'DISPATCHED', 'a'),
      ev(2, 'COMPLETED', 'a'),
      ev(12, 'DISPATCHED', 'a~1', 'a'), // a re-apply after the restart
      ev(3, 'DISPATCHED', 'b'), // in flight at the kill: sent again, never answered before
      ev(13, 'DISPATCHED', 'b'),
      ev(20, 'DISPATCHED', 'c'),
      ev(21, 'ACKNOWLEDGED', 'c'),
      ev(22, 'DISPATCHED', 'c'), // a retry within the same run
    ];
    should(duplicates(events, [10])).eql([]);
  });
});
