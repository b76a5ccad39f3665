/**
 * The engine's persistence (src/engine.ts `toJSON`, `DispatchEngine.restore`): the document
 * of everything needed to carry on after a restart, and rebuilding a new engine's indexes
 * from it, entry by entry, in steps (a bad entry is reported and left out, never costs the
 * others).
 * The engine's internals come through the narrow `PersistHost`; the restore rules are
 * documented on `DispatchEngine.restore`.
 */

import type { Steps } from './chunks';
import type { Clock } from './clock';
import { type Command, CommandStatus, commandToJSON, isFinal } from './commands';
import type { EngineJSON, EngineMetaJSON } from './engine-config';
import type { Tracked } from './engine-slots';
import type { PlanBook } from './plan-book';
import {
  problemAt,
  type RestoreProblem,
  restoreCommandsSteps,
  restoreEntries,
  shown,
} from './restore';
import type { ScheduleIds } from './schedule-ids';
import { type LastSchedule, lastScheduleFromJSON } from './silence';

/** What the persistence needs of the engine. */
export interface PersistHost {
  readonly clock: Clock;
  readonly book: PlanBook;
  readonly tracked: Map<string, Tracked>;
  readonly counts: Record<CommandStatus, number>;
  readonly finished: string[];
  readonly restoredStates: Map<string, string>;
  readonly scheduleIds: ScheduleIds;
  metaJSON(): EngineMetaJSON;
  setLastSchedule(last: LastSchedule | null): void;
  noteFinishedSetpoint(cmd: Command): void;
  addActive(slot: Tracked): void;
  expireIfEnded(slot: Tracked, now: number): boolean;
  enqueue(slot: Tracked, at: number): void;
  retryOrGiveUp(slot: Tracked, now: number, timedOut: boolean): void;
  trimFinished(): void;
  /** Tells the persist listeners that a command changed (`c:<id>`). */
  persistCommand(id: string): void;
}

export function engineToJSON(host: PersistHost): EngineJSON {
  const { assetStates, scheduleRevisions, lastSchedule } = host.metaJSON();
  return {
    format: 'qubit-energy/dispatch-engine',
    version: 1,
    savedAt: new Date(host.clock.now()).toISOString(),
    commands: [...host.tracked.values()].map((s) => commandToJSON(s.cmd)),
    assetStates,
    scheduleRevisions,
    lastSchedule,
    ...(host.book.size > 0 ? { plans: host.book.toJSON() } : {}),
  };
}

/** Commands restored between two checkpoints. */
const COMMANDS_A_STEP = 512;

/**
 * Restores `json` into an engine's (empty) indexes, with a checkpoint every few hundred
 * commands (chunks.ts); throws a TypeError for a non-document, before changing anything.
 */
export function* restoreSteps(
  host: PersistHost,
  json: unknown,
  onProblem: (problem: RestoreProblem) => void,
): Steps<void> {
  if (json === null || typeof json !== 'object')
    throw new TypeError('restore: expected an object from engine.toJSON()');
  const doc = json as Partial<EngineJSON>;
  if (doc.format !== 'qubit-energy/dispatch-engine' || doc.version !== 1) {
    throw new TypeError(
      `restore: not a dispatch engine document of version 1 (format ${JSON.stringify(doc.format)}, version ${JSON.stringify(doc.version)})`,
    );
  }
  const commands = yield* restoreCommandsSteps(doc.commands, onProblem);
  for (const [id, s] of restoreEntries(doc.assetStates, 'assetStates', onProblem)) {
    if (typeof s === 'string' && s !== '') host.restoredStates.set(id, s);
    else onProblem(problemAt('assetStates', id, `must be a state name, got ${shown(s)}`));
  }
  for (const [id, r] of restoreEntries(doc.scheduleRevisions, 'scheduleRevisions', onProblem)) {
    if (Number.isInteger(r) && (r as number) >= 1) host.scheduleIds.set(id, r as number);
    else onProblem(problemAt('scheduleRevisions', id, `must be an integer >= 1, got ${shown(r)}`));
  }
  // The silence goes on counting from the last schedule received before the restart.
  host.setLastSchedule(lastScheduleFromJSON(doc.lastSchedule, onProblem));
  const now = host.clock.now();
  let n = 0;
  for (const cmd of commands) {
    if (++n % COMMANDS_A_STEP === 0) yield;
    // Revisions follow the commands too, so that a lost revisions entry cannot reuse an id.
    if (cmd.scheduleId !== null) host.scheduleIds.note(cmd.scheduleId);
    const slot: Tracked = { cmd, dueToken: 0, deadlineToken: 0 };
    host.tracked.set(cmd.id, slot);
    host.counts[cmd.status]++;
    if (isFinal(cmd.status)) {
      host.finished.push(cmd.id);
      host.noteFinishedSetpoint(cmd);
      continue;
    }
    host.addActive(slot);
    if (cmd.holdReason !== null) {
      cmd.holdReason = null; // held again, if still, when its state machine is registered
      host.persistCommand(cmd.id);
    }
    if (cmd.status === CommandStatus.PENDING) {
      if (host.expireIfEnded(slot, now)) continue;
      host.enqueue(slot, cmd.nextAttemptAt?.getTime() ?? cmd.scheduledAt.getTime());
    } else {
      cmd.lastError = `no answer before the restart (attempt ${cmd.attempts})`;
      host.retryOrGiveUp(slot, now, true);
    }
  }
  host.trimFinished();
  for (const id of yield* host.book.restoreSteps(doc.plans, commands, onProblem))
    host.scheduleIds.note(id);
}
