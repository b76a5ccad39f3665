import should from 'should';
import {
  type CommandJSON,
  CommandStatus,
  CommandType,
  commandToJSON,
  createCommand,
  HISTORY_LIMIT,
  transition,
} from '../../src/commands';
import { applyDelta, decodeRecord, RecordEncoder } from '../../src/journal-codec';

const T0 = Date.parse('2025-06-02T08:00:00Z');

function command(id = 'cmd-1') {
  return createCommand(
    { id, assetId: 'ev1', type: CommandType.SET_CHARGE_RATE, valueKw: 7.4, scheduledAt: T0 },
    { now: T0 - 1000, maxRetries: 2, timeoutSeconds: 30, newId: () => id },
  );
}

/** Replays lines over a map of command JSON, as the journal does. */
function replay(lines: string[]): Map<string, unknown> {
  const state = new Map<string, unknown>();
  for (const line of lines) {
    const r = decodeRecord(line.replace(/\n$/, ''));
    if (r.kind === 'remove') state.delete(r.key);
    else if (r.kind === 'set') state.set(r.key, r.value);
    else state.set(r.key, applyDelta(state.get(r.key) as CommandJSON, r.delta));
  }
  return state;
}

describe('journal codec', () => {
  it('writes a command in full once, then its changes as small deltas that replay exactly', () => {
    const enc = new RecordEncoder();
    const cmd = command();
    const lines = [enc.encode(`c:${cmd.id}`, commandToJSON(cmd))];
    should(lines[0]).startWith('["n",');
    transition(cmd, CommandStatus.DISPATCHED, T0 + 10);
    cmd.attempts = 1;
    cmd.deadline = new Date(T0 + 30_000);
    lines.push(enc.encode(`c:${cmd.id}`, commandToJSON(cmd)));
    transition(cmd, CommandStatus.ACKNOWLEDGED, T0 + 20, 'accepted');
    cmd.askedKw = 11;
    cmd.limitedBy = 'main';
    lines.push(enc.encode(`c:${cmd.id}`, commandToJSON(cmd)));
    should(lines[1]).startWith('["d",');
    should(lines[2]).startWith('["d",');
    // A status change is ~100 bytes, well under the command's JSON.
    should(lines[1]?.length).be.below(JSON.stringify(commandToJSON(cmd)).length / 2);
    should(replay(lines).get(`c:${cmd.id}`)).eql(commandToJSON(cmd));
  });

  it('replays a history trimmed at its limit, and writes in full when it cannot tell what is new', () => {
    const enc = new RecordEncoder();
    const cmd = command();
    const lines = [enc.encode(`c:${cmd.id}`, commandToJSON(cmd))];
    for (let i = 0; i < HISTORY_LIMIT + 5; i++) {
      transition(cmd, i % 2 === 0 ? CommandStatus.DISPATCHED : CommandStatus.PENDING, T0 + i);
      lines.push(enc.encode(`c:${cmd.id}`, commandToJSON(cmd)));
    }
    should(replay(lines).get(`c:${cmd.id}`)).eql(commandToJSON(cmd));
    // Many changes between two records, beyond the limit: the last written entry is gone.
    for (let i = 0; i < HISTORY_LIMIT + 1; i++) {
      const to =
        cmd.status === CommandStatus.PENDING ? CommandStatus.DISPATCHED : CommandStatus.PENDING;
      transition(cmd, to, T0 + 100 + i);
    }
    const line = enc.encode(`c:${cmd.id}`, commandToJSON(cmd));
    should(line).startWith('["n",');
    should(replay([...lines, line]).get(`c:${cmd.id}`)).eql(commandToJSON(cmd));
  });

  it('keeps optional fields (reapplyOf, askedKw, limitedBy) and other keys as they are', () => {
    const enc = new RecordEncoder();
    const cmd = command('a~1');
    cmd.reapplyOf = 'a';
    cmd.askedKw = 9;
    cmd.limitedBy = 'fuse';
    const lines = [
      enc.encode('c:a~1', commandToJSON(cmd)),
      enc.encode('meta', { assetStates: { ev1: 'CHARGING' }, scheduleRevisions: { d: 2 } }),
      enc.encode('p:day', { columns: [1, 2, 3] }),
      enc.encode('o:a~1', 'disp-1'),
      enc.encode('o:a~1', undefined),
    ];
    delete cmd.askedKw;
    delete cmd.limitedBy;
    lines.push(enc.encode('c:a~1', commandToJSON(cmd)));
    const state = replay(lines);
    should(state.get('c:a~1')).eql(commandToJSON(cmd));
    should(JSON.stringify(state.get('c:a~1'))).equal(JSON.stringify(commandToJSON(cmd)));
    should(state.get('meta')).eql({
      assetStates: { ev1: 'CHARGING' },
      scheduleRevisions: { d: 2 },
    });
    should(state.get('p:day')).eql({ columns: [1, 2, 3] });
    should(state.has('o:a~1')).be.false();
  });

  it('writes a removed command as a removal, and in full when it comes back', () => {
    const enc = new RecordEncoder();
    const cmd = command();
    enc.encode('c:cmd-1', commandToJSON(cmd));
    should(enc.encode('c:cmd-1', undefined)).equal('["r","c:cmd-1"]\n');
    should(enc.tracked).equal(0);
    should(enc.encode('c:cmd-1', commandToJSON(cmd))).startWith('["n",');
  });

  it('says what is wrong with a bad record', () => {
    should(() => decodeRecord('{"a":')).throw(/not valid JSON/);
    should(() => decodeRecord('{"a":1}')).throw(/not a journal record/);
    should(() => decodeRecord('["x","k"]')).throw(/unknown record kind "x"/);
    should(() => decodeRecord('["d","id"]')).throw(/14 fields/);
    should(() =>
      decodeRecord(
        '["d","id","PENDING","1",null,null,null,null,null,1,"SET_CHARGE_RATE",null,null,[]]',
      ),
    ).throw(/attempts must be a number/);
  });
});
