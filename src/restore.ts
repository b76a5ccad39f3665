/**
 * Restoring a saved state entry by entry: what a command, an asset state or an owner of a
 * saved document is worth, and the problems of those that cannot be restored. One bad entry
 * is left out and reported (which entry, why); it never costs the others.
 */

import { BigSet } from './big-map';
import { runSync, type Steps } from './chunks';
import { type Command, type CommandJSON, commandFromJSON, InternCache } from './commands';

/** An entry of a saved state that could not be restored, and was left out. */
export interface RestoreProblem {
  /** Where in the document: `commands[3]`, `assetStates["ev1"]`, `owners["cmd-1"]`, ... */
  entry: string;
  /** The command's id, when the entry is a command that names one. */
  id?: string;
  reason: string;
}

/** `commands[3] (id day:a:1): valueKw must be ...`: a problem in one line. */
export function formatRestoreProblem(p: RestoreProblem): string {
  return `${p.entry}${p.id === undefined ? '' : ` (id ${p.id})`}: ${p.reason}`;
}

export function reportToConsole(p: RestoreProblem): void {
  console.error(`restore: left out ${formatRestoreProblem(p)}`);
}

/** A problem with the entry `key` of the object `field` of a saved document. */
export function problemAt(field: string, key: string, reason: string): RestoreProblem {
  return { entry: `${field}[${JSON.stringify(key)}]`, reason };
}

export function shown(v: unknown): string {
  return typeof v === 'number' ? String(v) : (JSON.stringify(v) ?? String(v));
}

/** The entries of an object field of a saved document ({} when absent); reports a non-object. */
export function restoreEntries(
  value: unknown,
  field: string,
  onProblem: (p: RestoreProblem) => void,
): [string, unknown][] {
  if (value === undefined || value === null) return [];
  if (typeof value !== 'object' || Array.isArray(value)) {
    onProblem({ entry: field, reason: `must be an object, got ${shown(value)}` });
    return [];
  }
  return Object.entries(value);
}

/** The saved commands that can be restored; each one that cannot is reported. */
export function restoreCommands(list: unknown, onProblem: (p: RestoreProblem) => void): Command[] {
  return runSync(restoreCommandsSteps(list, onProblem));
}

/** Saved commands read between two checkpoints. */
const COMMANDS_A_STEP = 512;

/** `restoreCommands` with a checkpoint every few hundred commands (chunks.ts). */
export function* restoreCommandsSteps(
  list: unknown,
  onProblem: (p: RestoreProblem) => void,
): Steps<Command[]> {
  const out: Command[] = [];
  if (list === undefined || list === null) return out;
  if (!Array.isArray(list)) {
    onProblem({ entry: 'commands', reason: `must be an array, got ${shown(list)}` });
    return out;
  }
  const shared = new InternCache();
  const ids = new BigSet<string>();
  for (let i = 0; i < list.length; i++) {
    if (i % COMMANDS_A_STEP === COMMANDS_A_STEP - 1) yield;
    const json: unknown = list[i];
    const raw = (json as { id?: unknown } | null)?.id;
    const problem = (reason: string): RestoreProblem =>
      typeof raw === 'string'
        ? { entry: `commands[${i}]`, id: raw, reason }
        : { entry: `commands[${i}]`, reason };
    let cmd: Command;
    try {
      cmd = commandFromJSON(json as CommandJSON, i, shared);
    } catch (err) {
      onProblem(
        problem(
          (err instanceof Error ? err.message : String(err)).replace(/^command \[\d+\]: /, ''),
        ),
      );
      continue;
    }
    if (ids.has(cmd.id)) {
      onProblem(problem(`id ${cmd.id} appears twice: the first one is kept`));
      continue;
    }
    ids.add(cmd.id);
    out.push(cmd);
  }
  return out;
}
