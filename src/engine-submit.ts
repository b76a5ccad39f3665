/**
 * The engine's schedules and submission (layer of DispatchEngine, src/engine.ts): converting
 * and receiving schedules, schedule ids and revisions, submitting commands and plans,
 * supersession of older schedules' commands, and the optimiser's silence (`checkSilence`:
 * the fallback commands when no schedule came for too long).
 */

import { BigSet } from './big-map';
import { runSync, type Steps } from './chunks';
import {
  type Command,
  type CommandInput,
  CommandStatus,
  commandToJSON,
  createCommand,
  InternCache,
} from './commands';
import { type Conversion, type ConvertOptions, convertSchedule } from './convert';
import type { PlanSubmission, TimeInput } from './engine-config';
import { EngineDispatch } from './engine-dispatch';
import { sameContent } from './engine-rules';
import type { Tracked } from './engine-slots';
import { EventType } from './event-bus';
import {
  isConversion,
  type PlanCursor,
  planOfConversionSteps,
  readPlanSteps,
  type SchedulePlan,
  StoredPlan,
} from './plans';
import { parseSchedule } from './schedule';
import { isSilenceFallback, silenceCommands, silenceDeadline } from './silence';

/** Commands made by `prepareSteps`, for `commitPrepared`. */
export interface PreparedCommands {
  commands: Command[];
  /** Whether the input was an array (errors name the element's index). */
  indexed: boolean;
}

/** Commands checked and made between two checkpoints of `prepareSteps`. */
const PREPARE_A_STEP = 256;

/** Cut rows made into their commands per step of `settleCutsSteps` (~1 ms of work). */
const CUT_ROWS_PER_STEP = 256;

export abstract class EngineSubmission extends EngineDispatch {
  // ---------------------------------------------------------------- schedules and submission

  /**
   * Converts a schedule (any accepted format) with the engine's deadband, horizon, retry and
   * timeout settings, publishes SCHEDULE_RECEIVED and submits the commands (superseding older
   * schedules' commands for the same assets). Returns the registered commands. The schedule
   * id is chosen as `receiveSchedule` says: one already used becomes the next revision.
   * Makes every command object at once (as `submit` does): for a big schedule,
   * `submitPlan(receiveSchedule(...))` keeps it as numbers until each command is due.
   */
  scheduleToCommands(schedule: unknown, options: Omit<ConvertOptions, 'now'>): Command[] {
    const conversion = this.receiveSchedule(schedule, options);
    return this.register(conversion.commands, this.clock.now());
  }

  /**
   * Everything `scheduleToCommands` does before it registers the commands, for hosts that
   * submit them later (the qe-schedule node sends them over a wire to a dispatcher): converts
   * the schedule with the engine's settings under a schedule id not used before in this
   * engine (`options.scheduleId`, else the id the schedule carries, else a new one; an id
   * already used becomes the next revision, `id#2`, as `uniqueScheduleId` says), records the
   * id and publishes SCHEDULE_RECEIVED. A bad schedule throws a ScheduleError and changes
   * nothing.
   */
  receiveSchedule(schedule: unknown, options: Omit<ConvertOptions, 'now'>): Conversion {
    // Parsed first, for the id it carries; the conversion takes the parsed schedule as it is.
    const parsed = parseSchedule(schedule, options);
    const scheduleId = this.uniqueScheduleId(options.scheduleId ?? parsed.scheduleId ?? undefined);
    const conversion = convertSchedule(parsed, this.conversionOptions(options, scheduleId));
    return this.acceptConversion(conversion);
  }

  /** What `receiveSchedule` converts with: the engine's settings, `options`, the id, now. */
  conversionOptions(
    options: Omit<ConvertOptions, 'now'>,
    scheduleId: string | undefined,
  ): ConvertOptions {
    return {
      deadbandKw: this.config.deadbandKw,
      horizonEnd: this.config.horizonEnd,
      maxRetries: this.config.maxRetries,
      timeoutSeconds: this.config.commandTimeoutSeconds,
      ...options,
      ...(scheduleId === undefined ? {} : { scheduleId }),
      now: this.clock.now(),
    };
  }

  /**
   * The end of `receiveSchedule`, for a conversion made elsewhere with this engine's settings
   * under an id from `uniqueScheduleId` taken just before (Site's `receiveScheduleAsync`
   * converts in slices): records the id, publishes SCHEDULE_RECEIVED. Changes nothing and
   * throws if one of its command ids is already registered.
   */
  acceptConversion(conversion: Conversion): Conversion {
    this.settleCuts(); // its SCHEDULE_RECEIVED after the events of the schedule before
    // Its ids are `<scheduleId>:...`: taken if any command or plan of that id is registered
    // (checked without making the conversion's commands).
    const sid = conversion.scheduleId;
    for (const { cmd } of this.tracked.values()) {
      if (cmd.scheduleId === sid && cmd.id.startsWith(`${sid}:`))
        throw new TypeError(`command id ${cmd.id} is already registered`);
    }
    if (this.book.get(sid)) throw new TypeError(`schedule ${sid} is already registered`);
    this.noteScheduleId(conversion.scheduleId);
    // A new schedule ends any silence, and the next is counted from now.
    this.lastSchedule = {
      scheduleId: conversion.scheduleId,
      at: this.clock.now(),
      assets: conversion.changes.assets.map((a) => ({ assetId: a.assetId, kind: a.kind })),
      silentAt: null,
    };
    this.persistMeta();
    this.eventBus.publish(EventType.SCHEDULE_RECEIVED, conversion.summary);
    this.wake();
    return conversion;
  }

  /**
   * A schedule id not used before in this engine (see `ScheduleIds.unique`): `base` the first
   * time, then `base#2`, `base#3`. Undefined stays undefined.
   */
  uniqueScheduleId(base: string | undefined): string | undefined {
    return this.scheduleIds.unique(base);
  }

  /**
   * Whether schedule id `id` was already used in this engine (persisted with its state). A
   * fleet gateway answers such a schedule `duplicate` instead of making a new revision.
   */
  hasScheduleId(id: string): boolean {
    return this.scheduleIds.has(id);
  }

  /** Records that schedule id `id` is in use (the next `uniqueScheduleId` gives a revision). */
  reserveScheduleId(id: string): void {
    this.noteScheduleId(id);
  }

  /** Notes a schedule id in use; a new revision is a change of the `meta` entry. */
  protected noteScheduleId(id: string): void {
    if (this.scheduleIds.note(id)) this.persistMeta();
  }

  /**
   * Registers commands made elsewhere: by `convertSchedule`, by hand
   * (`{assetId, type, valueKw, scheduledAt?, priority?}`), or in JSON form. Every element is
   * validated before any is registered: a bad one throws (naming its index) and changes
   * nothing. A command whose id is already registered with the same content is a re-delivery
   * and is skipped; with other content it is an error. Commands of a schedule supersede the
   * unfinished commands of other schedules for the same assets from that schedule's first
   * slot on. Returns the registered commands, in input order. Every command is an object from
   * now on: a big converted schedule is cheaper as a plan (`submitPlan`).
   */
  submit(input: Command | CommandInput | readonly (Command | CommandInput)[]): Command[] {
    return this.commitPrepared(runSync(this.prepareSteps(input)));
  }

  /**
   * The first part of `submit`, in steps (chunks.ts; a site runs them in slices,
   * `site.submitAsync`): every element checked and made into its Command, ids unique within
   * the input; a bad element throws, naming its index. Registers nothing and reads nothing
   * of the engine but its defaults (new ids), so it may run over several turns; then
   * `commitPrepared`.
   */
  *prepareSteps(
    input: Command | CommandInput | readonly (Command | CommandInput)[],
  ): Steps<PreparedCommands> {
    const indexed = Array.isArray(input);
    const list: readonly (Command | CommandInput)[] = indexed ? input : [input as Command];
    const now = this.clock.now();
    const commands: Command[] = [];
    const seen = new BigSet<string>();
    const defaults = {
      now,
      maxRetries: this.config.maxRetries,
      timeoutSeconds: this.config.commandTimeoutSeconds,
      newId: () => this.newCommandId(now),
      shared: new InternCache(),
    };
    for (let i = 0; i < list.length; i++) {
      if (i % PREPARE_A_STEP === PREPARE_A_STEP - 1) yield;
      const cmd = createCommand(
        list[i] as Command | CommandInput,
        defaults,
        indexed ? i : undefined,
      );
      if (seen.has(cmd.id)) {
        throw new TypeError(`command [${i}]: id ${cmd.id} appears twice in the input`);
      }
      seen.add(cmd.id);
      commands.push(cmd);
    }
    return { commands, indexed };
  }

  /**
   * Registers what `prepareSteps` made, in one step: a command whose id is already registered
   * with the same content is a re-delivery and is skipped, with other content an error
   * (checked for all before any is registered: nothing changes); then `submit`'s
   * registration. Returns the registered commands, in input order.
   */
  commitPrepared({ commands, indexed }: PreparedCommands): Command[] {
    const fresh: Command[] = [];
    for (let i = 0; i < commands.length; i++) {
      const cmd = commands[i] as Command;
      const existing = this.tracked.get(cmd.id);
      if (!existing) {
        fresh.push(cmd);
        continue;
      }
      if (!sameContent(existing.cmd, cmd)) {
        throw new TypeError(
          `command ${indexed ? `[${i}] ` : ''}id ${cmd.id} is already registered with other content (asset, type, value or time); give it a new id`,
        );
      }
    }
    return this.register(fresh, this.clock.now());
  }

  /** Registers validated commands with new ids: supersession, indexes, COMMAND_CREATED. */
  protected register(prepared: Command[], now: number, supersede = true): Command[] {
    this.settleCuts(); // its commands tracked and heard of after the rows cut before
    // Supersession: per schedule, from its first slot on, for its assets.
    const perSchedule = new Map<string, { start: number; assets: Set<string> }>();
    for (const c of prepared) {
      if (c.scheduleId === null || !supersede) continue;
      const e = perSchedule.get(c.scheduleId);
      const t = c.scheduledAt.getTime();
      if (!e) perSchedule.set(c.scheduleId, { start: t, assets: new Set([c.assetId]) });
      else {
        if (t < e.start) e.start = t;
        e.assets.add(c.assetId);
      }
    }
    for (const [scheduleId, { start, assets }] of perSchedule) {
      this.noteScheduleId(scheduleId);
      this.supersedeAll([...assets], scheduleId, start, now);
    }
    const emit = this.eventBus.hasSubscribers(EventType.COMMAND_CREATED);
    for (const cmd of prepared) {
      const slot: Tracked = { cmd, dueToken: 0, deadlineToken: 0 };
      this.tracked.set(cmd.id, slot);
      this.counts.PENDING++;
      this.addActive(slot);
      this.enqueue(slot, cmd.scheduledAt.getTime());
      if (emit) this.eventBus.publish(EventType.COMMAND_CREATED, commandToJSON(cmd));
      this.changed(cmd);
    }
    return prepared;
  }

  protected newCommandId(now: number): string {
    this.idCounter = (this.idCounter + 1) % 1_000_000;
    return `cmd-${now.toString(36)}-${this.idCounter.toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
  }

  protected supersede(
    assetId: string,
    scheduleId: string,
    start: number,
    now: number,
    budget = { skip: 0 },
    cursors?: Set<PlanCursor>,
  ): void {
    const active = this.active.get(assetId);
    if (active)
      for (const slot of [...active]) {
        const c = slot.cmd;
        if (c.scheduleId === null || c.scheduleId === scheduleId) continue;
        if (c.scheduledAt.getTime() >= start) {
          this.finish(slot, CommandStatus.CANCELLED, now, `superseded by schedule ${scheduleId}`);
        } else if (c.validUntil === null || c.validUntil.getTime() > start) {
          c.validUntil = new Date(start);
          this.persistCommand(c.id);
        }
      }
    this.book.supersede(assetId, scheduleId, start, now, budget, cursors);
    // A silence's fallback that already went out ends too: the new schedule is in force.
    if (this.lastSetpoint.size === 0) return;
    for (const kind of ['rate', 'cap']) {
      const c = this.lastSetpoint.get(`${assetId}\u0000${kind}`);
      if (!c || !isSilenceFallback(c) || c.scheduleId === scheduleId) continue;
      const end = Math.max(start, now);
      if (c.validUntil === null || c.validUntil.getTime() > end) {
        c.validUntil = new Date(end);
        this.persistCommand(c.id);
      }
    }
  }

  // ---------------------------------------------------------------- plans

  /**
   * Registers a converted schedule as its plan (a `Conversion`, or a `SchedulePlan` such as
   * `planOfConversion` makes and a qe-schedule node sends): the rows are kept as numbers and
   * each becomes a command only when it is due for its asset, or when something reads it
   * (`getCommand`, `getCommands`, `getActiveCommands`, ...). Otherwise as `submit` of the
   * conversion's commands: the same ids, events (COMMAND_CREATED for each row, made from the
   * row, when someone subscribes), supersession of other schedules' commands and rows for its
   * assets from its first slot on, and order in which due commands are handed out. Costs
   * O(assets) plus a copy of the columns. A schedule id already registered with the same rows
   * is a re-delivery (`duplicate`, nothing changes); with other rows, a TypeError.
   */
  submitPlan(input: Conversion | SchedulePlan | StoredPlan): PlanSubmission {
    return this.commitPlan(runSync(this.stagePlan(input)));
  }

  /**
   * The part of `submitPlan` that changes nothing, as a loop that yields at checkpoints (see
   * chunks.ts; `Site.submitPlanAsync` runs it in slices): the plan made (from a Conversion),
   * read and checked, copied into its StoredPlan. A StoredPlan is taken as it is. A bad plan
   * throws its TypeError here.
   */
  *stagePlan(input: unknown): Steps<StoredPlan> {
    if (input instanceof StoredPlan) return input;
    const plan = isConversion(input) ? yield* planOfConversionSteps(input) : input;
    const stored = yield* readPlanSteps(plan, 'plan');
    yield* this.book.stage(stored);
    return stored;
  }

  /**
   * The part of `submitPlan` that registers a plan staged by `stagePlan` (use it once), in
   * one go: re-delivery check, supersession, its cursors into the due heap, events. O(assets)
   * plus the rows it supersedes.
   *
   * With `cutsLater` (`Site.submitPlanAsync`), the supersession still takes effect at once
   * (the older schedules' rows are cut, nothing of them can fall due or be handed out, the
   * new plan is in force), but the superseded rows' CANCELLED commands, their change notices
   * and COMMAND_CANCELLED events are made afterwards, by `settleCutsSteps` in slices or at
   * the latest when something reads or changes a command (`settleCuts`): the only visible
   * difference is that those events may arrive in the turns after this call. Queries,
   * counts, `toJSON`, the journal and the order of events are as without it.
   */
  commitPlan(plan: StoredPlan, options: { cutsLater?: boolean } = {}): PlanSubmission {
    this.settleCuts();
    const id = plan.scheduleId;
    if (this.book.isRedelivery(plan, this.tracked.values()))
      return { scheduleId: id, count: 0, duplicate: true };
    const count = plan.rowsLeft();
    if (count === 0) return { scheduleId: id, count: 0, duplicate: false };
    const now = this.clock.now();
    this.noteScheduleId(id);
    let start = Number.POSITIVE_INFINITY;
    const assets: string[] = [];
    for (const c of plan.cursors) {
      if (c.next >= c.end) continue;
      start = Math.min(start, plan.timeOf(c.next));
      assets.push(c.assetId);
    }
    // Its cursors first: an asset's set of cursors then never empties while the old ones are
    // cut (one set.delete, not a map delete and a new entry; the cut skips its own cursors).
    const sets = this.book.add(plan);
    if (!options.cutsLater) this.supersedeAll(assets, id, start, now);
    else
      this.book.cutLater(() => {
        // The budget is cutLater's; each asset's cursor set as `add` left it (no lookup).
        for (let i = 0; i < assets.length; i++)
          this.supersede(assets[i] as string, id, start, now, undefined, sets[i]);
      });
    // COMMAND_CREATED of its rows after the COMMAND_CANCELLED of those it cut, as always.
    if (this.eventBus.hasSubscribers(EventType.COMMAND_CREATED)) this.settleCuts();
    this.book.announce(plan);
    this.wake();
    return { scheduleId: id, count, duplicate: false };
  }

  /**
   * `settleCuts` in slices (rows cut by `commitPlan` with `cutsLater`, about CUT_ROWS_PER_STEP
   * a step), until none is left or `stop()` says so (the rest is made when next needed).
   */
  *settleCutsSteps(stop?: () => boolean): Steps<void> {
    while (!stop?.() && this.book.settleSome(CUT_ROWS_PER_STEP)) yield;
  }

  /** Whether the plan of schedule `scheduleId` still has rows not made into commands. */
  hasPlan(scheduleId: string): boolean {
    return this.book.get(scheduleId) !== undefined;
  }

  /** `supersede` for several assets, planned rows cancelled within one budget. */
  protected supersedeAll(
    assetIds: readonly string[],
    scheduleId: string,
    start: number,
    now: number,
  ): void {
    const budget = this.book.budget(this.book.rowsFrom(assetIds, scheduleId, start));
    for (const a of assetIds) this.supersede(a, scheduleId, start, now, budget);
  }

  /**
   * When the optimiser is silent at `now` (`silenceSeconds` set, and no schedule received
   * for that long since the last one): registers, once per silence, a fallback command due
   * now for each asset of the last schedule (the setpoint of `horizonEnd.fallbackKw`),
   * superseding what is pending for those assets, and publishes OPTIMISER_SILENT. Called
   * by `getPendingCommands`; `nextWakeAt` includes the moment. Returns the new commands.
   */
  checkSilence(now?: TimeInput): Command[] {
    const t = this.now(now);
    const last = this.lastSchedule;
    const deadline = silenceDeadline(last, this.config.silenceSeconds);
    if (last === null || deadline === null || t < deadline) return [];
    last.silentAt = t;
    this.persistMeta();
    const h = this.config.horizonEnd;
    const fresh = (
      h === 'hold'
        ? []
        : silenceCommands(last, h.fallbackKw, t, {
            maxRetries: this.config.maxRetries,
            timeoutSeconds: this.config.commandTimeoutSeconds,
          })
    ).filter((c) => !this.tracked.has(c.id));
    this.settleCuts(); // what it cuts is heard of after the rows cut before
    if (fresh.length > 0)
      this.supersedeAll(
        fresh.map((c) => c.assetId),
        fresh[0]?.scheduleId as string,
        t,
        t,
      );
    for (const c of fresh) {
      // The stale plan's setpoint that went out ends now: the fallback is in force.
      const done = this.lastSetpoint.get(`${c.assetId}\u0000rate`);
      if (done && (done.validUntil === null || done.validUntil.getTime() > t))
        done.validUntil = new Date(t);
    }
    this.register(fresh, t, false);
    this.eventBus.publish(EventType.OPTIMISER_SILENT, {
      scheduleId: last.scheduleId,
      receivedAt: new Date(last.at).toISOString(),
      silentForSeconds: Math.round((t - last.at) / 1000),
      assets: last.assets.map((a) => a.assetId),
      commandIds: fresh.map((c) => c.id),
    });
    this.wake();
    return fresh;
  }
}
