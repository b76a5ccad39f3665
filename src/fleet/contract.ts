/**
 * The northbound MQTT contract, version 1: the topics of a site and the payloads on them,
 * shared by the gateway (a site's side) and the central client (an optimiser's side). Data
 * and types only; `docs/asyncapi.json` describes the same contract for other languages, and
 * the tests check the gateway against it. MQTT 3.1.1 and 5; all payloads are UTF-8 JSON.
 *
 * Topics, under a prefix (default `qe/v1`) and the site id:
 *
 * | topic                              | dir | QoS | retained | payload                    |
 * | ---------------------------------- | --- | --- | -------- | -------------------------- |
 * | `<p>/<site>/schedule`              | in  | 1   | no       | ScheduleRequest            |
 * | `<p>/<site>/schedule/ack`          | out | 1   | no       | Ack                        |
 * | `<p>/<site>/commands`              | in  | 1   | no       | CommandsRequest            |
 * | `<p>/<site>/commands/ack`          | out | 1   | no       | Ack                        |
 * | `<p>/<site>/limits`                | in  | 1   | no       | LimitsRequest              |
 * | `<p>/<site>/limits/ack`            | out | 1   | no       | Ack                        |
 * | `<p>/<site>/presence`              | out | 1   | yes      | Presence (last will: offline) |
 * | `<p>/<site>/assets/<assetId>`      | out | 1   | yes      | AssetStatus                |
 * | `<p>/<site>/events/<EventType>`    | out | 0/1 | no       | FleetEvent (BUFFER_DROPPED: a note) |
 * | `<p>/<site>/telemetry/<assetId>`   | out | 0   | no       | Telemetry                  |
 *
 * Requests carry a `requestId` (a schedule: its `scheduleId`); the ack echoes it. With MQTT 5
 * a request's response topic and correlation data are honoured (the ack goes there, with the
 * correlation data, and not to the ack topic), a bare schedule may carry its id in the user
 * property `scheduleId`, and a publisher may set a message expiry interval so that a schedule
 * that would arrive too late is dropped: dropping it is the broker's job (the gateway does not
 * look at the expiry). The same schedule id twice is a no-op answered `duplicate` (QoS 1 may
 * deliver twice; the ids used are kept with the site's state, so this holds across restarts);
 * a new id is a new revision that supersedes. A commands or limits request id seen again (the
 * last 1000 accepted, not across restarts) is answered `duplicate` too.
 */

/** The contract's version; topics carry it in the prefix (`qe/v1`). */
export const CONTRACT_VERSION = 1;
export const DEFAULT_PREFIX = 'qe/v1';

export type TopicKind =
  | 'schedule'
  | 'schedule/ack'
  | 'commands'
  | 'commands/ack'
  | 'limits'
  | 'limits/ack'
  | 'presence';

/** `<prefix>/<siteId>/<kind>`. Site ids may not contain `/`, `+` or `#`. */
export function siteTopic(prefix: string, siteId: string, kind: TopicKind): string {
  return `${prefix}/${siteId}/${kind}`;
}

export function assetTopic(prefix: string, siteId: string, assetId: string): string {
  return `${prefix}/${siteId}/assets/${assetId}`;
}

export function eventTopic(prefix: string, siteId: string, type: string): string {
  return `${prefix}/${siteId}/events/${type}`;
}

export function telemetryTopic(prefix: string, siteId: string, assetId: string): string {
  return `${prefix}/${siteId}/telemetry/${assetId}`;
}

/** In: a schedule for the site. `schedule` is any format the package accepts. */
export interface ScheduleRequest {
  /** The schedule's id: the same id again is a no-op (`duplicate`), a new one supersedes. */
  scheduleId: string;
  /** pandas `to_json(orient="split")`, records, CSV text, ...: see the README's Schedules. */
  schedule: unknown;
  /** ISO 8601: the optimiser's time of publishing (for the ack's latency figures). */
  sentAt?: string;
}

/** In: hand-made commands (`CommandInput`s), e.g. a manual override. */
export interface CommandsRequest {
  requestId: string;
  commands: unknown[];
}

/** In: dynamic caps (`DynamicCapInput`s, or `{id, clear: true}`). */
export interface LimitsRequest {
  requestId: string;
  caps: unknown[];
}

/** Out: the answer to a request, on `<kind>/ack` (or an MQTT 5 response topic). */
export interface Ack {
  /** The schedule id or request id it answers (null when the request had none readable). */
  requestId: string | null;
  status: 'accepted' | 'duplicate' | 'rejected';
  /** A schedule: its summary (SCHEDULE_RECEIVED's payload); commands: their ids. */
  result?: unknown;
  /**
   * A rejection: what was wrong, and where when known: `field` (a path in the request or in
   * the element), `row` and `column` (a schedule's zero-based data row and its column),
   * `index` (the element of a request's `commands` or `caps`).
   */
  error?: { message: string; field?: string; row?: number; column?: string; index?: number };
  /** ISO 8601, the gateway's clock. */
  at: string;
}

/** Out, retained: the gateway's presence; the last will publishes `offline`. */
export interface Presence {
  siteId: string;
  status: 'online' | 'offline';
  /** The package's version. */
  version: string;
  contract: number;
  /** ISO 8601: when the gateway came online (for the will: when it connected). */
  at: string;
}

/** Out, retained: an asset's state and the setpoint in force. */
export interface AssetStatus {
  assetId: string;
  state: string | null;
  setpoint: {
    commandId: string;
    type: string;
    kw: number;
    askedKw?: number;
    limitedBy?: string;
    since: string;
    validUntil: string | null;
  } | null;
  at: string;
}

/**
 * Out: an event of the site's bus as it is (`{type, payload, timestamp, sequence}`); the
 * sequence increases by one per event of the site, so a gap is a lost event. Also the
 * BUFFER_DROPPED note (payload BufferDropped, sequence the last one dropped).
 */
export interface FleetEvent {
  type: string;
  payload: unknown;
  timestamp: string;
  sequence: number;
}

/**
 * The type of the note the gateway publishes on `<p>/<site>/events/BUFFER_DROPPED` (a
 * FleetEvent whose payload is a BufferDropped) when its bounded buffer of events dropped the
 * oldest while the broker was away; published on reconnect, before the events it kept.
 */
export const BUFFER_DROPPED = 'BUFFER_DROPPED';

/** Payload of the BUFFER_DROPPED note: how many events were lost, and their sequences. */
export interface BufferDropped {
  dropped: number;
  /** The bus sequences of the first and last event dropped. */
  firstSequence: number;
  lastSequence: number;
}

/** Out: a measurement of an asset's power. */
export interface Telemetry {
  assetId: string;
  kw: number;
  at: string;
}
