/**
 * The FleetGateway's options and counters (src/fleet/gateway.ts), apart from the class that
 * uses them.
 */

import type { IClientOptions, MqttClient } from 'mqtt';
import type { SliceOptions } from '../chunks';
import type { Command } from '../commands';
import type { Conversion, ConvertOptions } from '../convert';
import type { EventType } from '../event-bus';

export interface FleetGatewayOptions {
  /** The broker, e.g. `mqtt://broker:1883`, `mqtts://...`, `ws://...`. Or give `client`. */
  url?: string;
  /** A client made elsewhere (its will is then its maker's business). Not ended by stop(). */
  client?: MqttClient;
  /** MQTT.js options: protocolVersion 4 | 5, username, password, TLS (ca, cert, key), ... */
  mqtt?: IClientOptions;
  /** Topic prefix. Default `qe/v1`. */
  prefix?: string;
  /** Default the site's id. May not contain `/`, `+` or `#`. */
  siteId?: string;
  /** Published in the presence. Default the package's version. */
  version?: string;
  /** Conversion options of schedules (assetMap, ratedKw, ...). Default `{assetMap: {}}`. */
  schedule?: Omit<ConvertOptions, 'now'>;
  /** Where an accepted schedule goes. Default: registered as its plan (see FleetRequests). */
  onSchedule?: (conversion: Conversion) => void | Promise<void>;
  /** Where accepted hand-made commands go (and a schedule's, without `onSchedule`). */
  onCommands?: (commands: Command[], conversion: Conversion | null) => void;
  /** The event types published on `events/<TYPE>`. Default all. */
  eventTypes?: EventType[];
  /** Events kept while the broker is away; the oldest are dropped beyond it. Default 1000. */
  eventBufferLimit?: number;
  /** QoS of events. Default 1. */
  qosEvents?: 0 | 1;
  /** How a request is read, converted and registered: slices of `sliceMs` (default 8). */
  slicing?: SliceOptions;
  /** A request larger than this is rejected unread. Default 32 MiB. */
  maxPayloadBytes?: number;
  /** Problems with no request to answer (broker errors, a failed publish). Default console.error. */
  onError?: (error: Error) => void;
}

export interface FleetGatewayStats {
  /** Requests received (schedule, commands, limits), whatever became of them. */
  received: number;
  /** Requests answered `accepted`. */
  acked: number;
  rejected: number;
  duplicates: number;
  eventsSent: number;
  /** Events waiting in the buffer now. */
  buffered: number;
  /** Events dropped from the full buffer, in all. */
  dropped: number;
}
