/**
 * FleetRequests: what a site does with the requests of the fleet contract (`./contract`),
 * transport aside. A request's payload (bytes, as a broker delivers them) becomes an answer
 * (`accepted`, `duplicate` or `rejected` with what was wrong and where): a schedule is read
 * and converted in slices of a few ms (`site.receiveScheduleAsync`) and registered as its
 * plan (`site.submitPlanAsync`: commands are made as they fall due), or handed on; hand-made
 * commands are validated all or none; caps are applied in order. Never rejects: whatever the
 * bytes, there is an answer. The FleetGateway puts the answer on the wire as an Ack.
 */

import { runSliced, type SliceOptions } from '../chunks';
import { type Command, createCommand, InternCache } from '../commands';
import type { Conversion, ConvertOptions } from '../convert';
import { parseJsonSteps } from '../json-chunks';
import { ScheduleError } from '../schedule';
import type { Site } from '../site';
import type { Ack } from './contract';

export type RequestKind = 'schedule' | 'commands' | 'limits';
export type AckError = NonNullable<Ack['error']>;

/** An Ack without its time. */
export interface Answer {
  requestId: string | null;
  status: Ack['status'];
  result?: unknown;
  error?: AckError;
}

export interface FleetRequestsOptions {
  /** Conversion options of schedules (assetMap, ratedKw, ...). Default `{assetMap: {}}`. */
  schedule?: Omit<ConvertOptions, 'now'>;
  /**
   * Where an accepted schedule goes, as its conversion (qe-fleet sends it on as msg.plan).
   * Default: registered as its plan, `site.submitPlanAsync`. The request is acked when it
   * settles; a throw or a rejection is a rejected ack.
   */
  onSchedule?: (conversion: Conversion) => void | Promise<void>;
  /**
   * Where accepted hand-made commands go. Default `site.submit`. Without `onSchedule`, a
   * schedule's commands come here too, all made at once, with their conversion (the form
   * before plans).
   */
  onCommands?: (commands: Command[], conversion: Conversion | null) => void;
  /** A request larger than this is rejected unread. Default 32 MiB. */
  maxPayloadBytes?: number;
  /** How a request is read, converted and registered: slices of `sliceMs` (default 8). */
  slicing?: SliceOptions;
}

/** Request ids of commands and limits remembered, for QoS 1 redeliveries. */
const SEEN_REQUESTS = 1000;

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function shown(v: unknown): string {
  return JSON.stringify(v) ?? 'undefined';
}

function answer(
  requestId: string | null,
  status: Ack['status'],
  result?: unknown,
  error?: AckError,
): Answer {
  return {
    requestId,
    status,
    ...(result !== undefined ? { result } : {}),
    ...(error !== undefined ? { error } : {}),
  };
}

/**
 * What an error says, and where, for an ack: a ScheduleError's first row and column, the
 * `field` of a CommandValidationError, LimitsConfigError or CapError, the element's index.
 */
export function ackError(err: unknown, index?: number): AckError {
  const e = err instanceof Error ? err : new Error(String(err));
  const out: AckError = { message: e.message };
  if (e instanceof ScheduleError) {
    const p = e.problems.find((q) => q.row !== undefined || q.column !== undefined);
    if (p?.row !== undefined) out.row = p.row;
    if (p?.column !== undefined) out.column = p.column;
  }
  const field = (e as { field?: unknown }).field;
  if (typeof field === 'string' && field !== '') out.field = field;
  const i = index ?? (e as { index?: unknown }).index;
  if (typeof i === 'number') out.index = i;
  return out;
}

export class FleetRequests {
  private readonly seen = new Map<string, true>();
  private idCounter = 0;
  readonly maxPayloadBytes: number;

  constructor(
    private readonly site: Site,
    private readonly options: FleetRequestsOptions = {},
  ) {
    this.maxPayloadBytes = options.maxPayloadBytes ?? 32 * 1024 * 1024;
  }

  /**
   * The answer to a request of `kind`. `userScheduleId` (MQTT 5's user property `scheduleId`)
   * lets a schedule come bare, CSV text included. The payload is parsed, and a schedule
   * converted and registered, in slices with event-loop turns between them: the caller takes
   * one request at a time (a request that follows a schedule acts on it).
   */
  async handle(kind: RequestKind, payload: Buffer, userScheduleId?: string): Promise<Answer> {
    try {
      return await this.handleUnsafe(kind, payload, userScheduleId);
    } catch (err) {
      // Nothing above should throw; if it does, the sender still gets an answer.
      return answer(null, 'rejected', undefined, ackError(err));
    }
  }

  private async handleUnsafe(
    kind: RequestKind,
    payload: Buffer,
    userScheduleId?: string,
  ): Promise<Answer> {
    if (payload.length > this.maxPayloadBytes) {
      return answer(null, 'rejected', undefined, {
        message: `the request is ${payload.length} bytes, more than the ${this.maxPayloadBytes} allowed (maxPayloadBytes)`,
      });
    }
    const text = payload.toString('utf8');
    let body: unknown;
    try {
      // In pieces: a schedule of 10,000 assets is megabytes of JSON.
      body = await runSliced(parseJsonSteps(text), this.options.slicing);
    } catch (err) {
      // A bare schedule (MQTT 5, id in a user property) may be CSV text.
      if (kind !== 'schedule' || userScheduleId === undefined) {
        return answer(null, 'rejected', undefined, {
          message: `the payload is not JSON: ${(err as Error).message}`,
        });
      }
      body = text;
    }
    if (kind === 'schedule') return this.schedule(body, userScheduleId);
    if (kind === 'commands') return this.commands(body);
    return this.limits(body);
  }

  private async schedule(body: unknown, userScheduleId: string | undefined): Promise<Answer> {
    let scheduleId: unknown;
    let schedule: unknown;
    if (isObject(body) && 'scheduleId' in body && 'schedule' in body) {
      scheduleId = body.scheduleId;
      schedule = body.schedule;
    } else if (userScheduleId !== undefined) {
      scheduleId = userScheduleId;
      schedule = body;
    } else {
      return answer(null, 'rejected', undefined, {
        message:
          'a schedule request must be {"scheduleId": "...", "schedule": ...} (with MQTT 5, a bare schedule may carry its id in the user property scheduleId)',
        field: 'scheduleId',
      });
    }
    if (typeof scheduleId !== 'string' || scheduleId.trim() === '') {
      return answer(null, 'rejected', undefined, {
        message: `scheduleId must be a non-empty string, got ${shown(scheduleId)}`,
        field: 'scheduleId',
      });
    }
    // Already used (persisted with the engine's state): a redelivery, or a resend.
    if (this.site.engine.hasScheduleId(scheduleId)) {
      return answer(scheduleId, 'duplicate', { scheduleId });
    }
    let conversion: Conversion;
    try {
      conversion = await this.site.receiveScheduleAsync(
        schedule,
        { assetMap: {}, ...this.options.schedule, scheduleId },
        this.options.slicing,
      );
    } catch (err) {
      return answer(scheduleId, 'rejected', undefined, ackError(err));
    }
    try {
      const { onSchedule, onCommands } = this.options;
      if (onSchedule) await onSchedule(conversion);
      else if (onCommands) onCommands(conversion.commands, conversion);
      else await this.site.submitPlanAsync(conversion, { slicing: this.options.slicing ?? {} });
    } catch (err) {
      const e = ackError(err);
      e.message = `schedule ${conversion.scheduleId} was converted but not registered (nothing of it will be sent): ${e.message}`;
      return answer(scheduleId, 'rejected', undefined, e);
    }
    return answer(scheduleId, 'accepted', conversion.summary);
  }

  private hand(commands: Command[]): void {
    if (this.options.onCommands) this.options.onCommands(commands, null);
    else this.site.submit(commands);
  }

  /** `{requestId, <list>}`: the id and the list, or the answer that rejects it. */
  private envelope(
    kind: RequestKind,
    body: unknown,
    list: 'commands' | 'caps',
  ): [string, unknown[]] | Answer {
    const id = isObject(body) ? body.requestId : undefined;
    const requestId = typeof id === 'string' && id.trim() !== '' ? id : null;
    if (!isObject(body) || requestId === null) {
      return answer(null, 'rejected', undefined, {
        message: `a ${kind} request must be {"requestId": "...", "${list}": [...]}; requestId must be a non-empty string, got ${shown(id)}`,
        field: 'requestId',
      });
    }
    const items = body[list];
    if (!Array.isArray(items)) {
      return answer(requestId, 'rejected', undefined, {
        message: `${list} must be an array, got ${shown(items)}`,
        field: list,
      });
    }
    if (this.seen.has(`${kind}\u0000${requestId}`)) {
      return answer(requestId, 'duplicate', { requestId });
    }
    return [requestId, items];
  }

  private remember(kind: RequestKind, requestId: string): void {
    this.seen.set(`${kind}\u0000${requestId}`, true);
    if (this.seen.size > SEEN_REQUESTS) this.seen.delete(this.seen.keys().next().value as string);
  }

  private commands(body: unknown): Answer {
    const req = this.envelope('commands', body, 'commands');
    if (!Array.isArray(req)) return req;
    const [requestId, items] = req;
    const engine = this.site.engine;
    const now = this.site.clock.now();
    const defaults = {
      now,
      maxRetries: engine.config.maxRetries,
      timeoutSeconds: engine.config.commandTimeoutSeconds,
      newId: () => `mqtt-${now.toString(36)}-${(++this.idCounter).toString(36)}`,
      shared: new InternCache(),
    };
    let commands: Command[];
    try {
      // Validated here, all or none, whoever takes them (the default, site.submit, again).
      commands = items.map((item, i) => createCommand(item, defaults, i));
      this.hand(commands);
    } catch (err) {
      return answer(requestId, 'rejected', undefined, ackError(err));
    }
    this.remember('commands', requestId);
    return answer(requestId, 'accepted', { commandIds: commands.map((c) => c.id) });
  }

  private limits(body: unknown): Answer {
    const req = this.envelope('limits', body, 'caps');
    if (!Array.isArray(req)) return req;
    const [requestId, caps] = req;
    const applied: string[] = [];
    for (let i = 0; i < caps.length; i++) {
      try {
        this.site.setCap(caps[i]);
      } catch (err) {
        const e = ackError(err, i);
        const before =
          applied.length > 0
            ? `; the caps before it were applied and stay in force (${applied.join(', ')})`
            : '';
        e.message = `caps[${i}]: ${e.message}${before}; the caps after it were not applied`;
        return answer(requestId, 'rejected', { applied }, e);
      }
      const id = isObject(caps[i]) ? (caps[i] as { id?: unknown }).id : undefined;
      applied.push(typeof id === 'string' ? id : `#${i}`);
    }
    this.remember('limits', requestId);
    return answer(requestId, 'accepted', { applied });
  }
}
