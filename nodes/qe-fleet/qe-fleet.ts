/**
 * qe-fleet ("fleet gateway"): a site's end of the fleet link. It runs one FleetGateway
 * (src/fleet/gateway.ts) for the site of its qe-coordinator on the broker of its
 * qe-fleet-broker: schedules and commands that arrive over MQTT come out of output 1 as
 * qe-schedule's do (wire it to a qe-dispatcher), acks and connection notes out of output 2.
 * The node wires RED to the gateway; the contract's logic lives in src/fleet/.
 */
import type { MqttClient, Packet } from 'mqtt';
import type { Node, NodeAPI, NodeMessage } from 'node-red';
import {
  type Command,
  type Conversion,
  commandToJSON,
  EVENT_TYPES,
  type EventType,
  FleetGateway,
  type NetProblem,
  netProblem,
} from '../..';
import {
  listField,
  problemStatus,
  refuseInput,
  type ScheduleFields,
  scheduleOptions,
  type UserDef,
  useCoordinator,
} from '../lib/common';
import type { FleetBrokerNode } from '../qe-fleet-broker/qe-fleet-broker';

interface FleetDef extends UserDef, ScheduleFields {
  broker?: string;
  eventTypes?: string[] | string;
}

/** An ack that the gateway publishes (`{requestId, status, at, ...}`), or null. */
function parseAck(payload: unknown): Record<string, unknown> | null {
  if (!Buffer.isBuffer(payload) && typeof payload !== 'string') return null;
  try {
    const p = JSON.parse(payload.toString()) as Record<string, unknown> | null;
    const acked = ['accepted', 'duplicate', 'rejected'];
    return p && typeof p === 'object' && 'requestId' in p && acked.includes(String(p.status))
      ? p
      : null;
  } catch {
    return null;
  }
}

/** host and port of a broker URL, for naming it in a status. */
function target(url: string): { op: 'connect'; host: string; port: number } {
  try {
    const u = new URL(url);
    const port = Number(u.port) || ({ 'mqtts:': 8883, 'ws:': 80, 'wss:': 443 }[u.protocol] ?? 1883);
    return { op: 'connect', host: u.hostname.replace(/^\[|\]$/g, ''), port };
  } catch {
    return { op: 'connect', host: url, port: 0 };
  }
}

export default function (RED: NodeAPI) {
  function QeFleet(this: Node, def: FleetDef) {
    RED.nodes.createNode(this, def);
    const found = useCoordinator(RED, this, def);
    const broker = def.broker ? (RED.nodes.getNode(def.broker) as FleetBrokerNode | null) : null;
    if (broker) {
      broker.register(this);
      this.on('close', () => broker.deregister(this));
    }
    const options = scheduleOptions(def, 'qe-fleet');
    const types = listField(def.eventTypes);
    const unknown = types.filter((t) => !EVENT_TYPES.includes(t as EventType));
    let setupError: string | null =
      'error' in found
        ? found.error
        : !broker
          ? "qe-fleet: no broker: pick a qe-fleet-broker in this node's properties"
          : options instanceof Error
            ? options.message
            : unknown.length > 0
              ? `qe-fleet: unknown event type ${unknown.join(', ')}; use ${EVENT_TYPES.join(', ')}`
              : null;
    const settings = setupError || !broker ? null : broker.settingsFor();
    if (settings && 'error' in settings) setupError = settings.error;
    if (
      setupError ||
      !settings ||
      'error' in settings ||
      'error' in found ||
      options instanceof Error
    ) {
      refuseInput(this, setupError ?? 'qe-fleet: not configured', 'qe-fleet.status.misconfigured');
      return;
    }
    const { site } = found;

    let lastSchedule: string | null = null;
    let problem: NetProblem | null = null;
    let closed = false;
    /** The connection was lost and has not come back (the client keeps trying). */
    let down = false;
    let gateway: FleetGateway | null = null;
    const where = target(settings.url);
    const showStatus = () => {
      if (closed) return;
      if (gateway?.connected) {
        this.status({
          fill: 'green',
          shape: 'dot',
          text: lastSchedule
            ? RED._('qe-fleet.status.connected-schedule', { schedule: lastSchedule })
            : 'qe-fleet.status.connected',
        });
      } else if (problem) {
        this.status(problemStatus(RED, 'qe-fleet', problem));
      } else if (down) {
        this.status({ fill: 'red', shape: 'ring', text: 'qe-fleet.status.disconnected' });
      } else {
        this.status({ fill: 'yellow', shape: 'ring', text: 'qe-fleet.status.connecting' });
      }
    };
    const note = (status: 'connected' | 'disconnected') => {
      if (closed) return;
      const payload = { status, url: settings.url, at: new Date().toISOString() };
      this.send([null, { topic: 'connection', payload } as NodeMessage]);
    };

    try {
      gateway = new FleetGateway(site, {
        url: settings.url,
        mqtt: settings.mqtt,
        prefix: settings.prefix,
        siteId: site.siteId,
        schedule: options,
        eventTypes: types as EventType[],
        onError: (err: Error) => {
          if (closed) return;
          // Logged, not warned: a broker that is away is a state (the status), not a fault.
          problem = netProblem(err, where);
          this.log(`qe-fleet: ${settings.url}: ${err.message}`);
          showStatus();
        },
        onCommands: (commands: Command[], conversion: Conversion | null) => {
          if (closed) return;
          // The shape of qe-schedule's output, so that a dispatcher takes it as it is.
          const msg: Record<string, unknown> = {
            topic: conversion?.scheduleId ?? 'commands',
            payload: commands.map(commandToJSON),
          };
          if (conversion) {
            msg.schedule = conversion.summary;
            if (options.limitColumn !== undefined) msg.limits = conversion.limits;
            lastSchedule = conversion.scheduleId;
          }
          this.send([msg as NodeMessage, null]);
          showStatus();
        },
      });
    } catch (err) {
      refuseInput(this, `qe-fleet: ${(err as Error).message}`, 'qe-fleet.status.misconfigured');
      return;
    }
    const gw = gateway;
    // Resolves once connected or after the first failed attempt; it never rejects.
    void gw.start();
    // Connection changes and the acks the gateway publishes, for the status and output 2,
    // from its MQTT client's own events (FleetGateway has no hooks for them yet).
    const client = (gw as unknown as { client: MqttClient | null }).client;
    const onConnect = () => {
      problem = null;
      down = false;
      note('connected');
      showStatus();
    };
    const onOffline = () => {
      down = true;
      note('disconnected');
      showStatus();
    };
    const onClose = () => showStatus();
    const onSend = (packet: Packet) => {
      if (closed || packet.cmd !== 'publish') return;
      const ack = parseAck(packet.payload);
      if (ack) this.send([null, { topic: packet.topic, payload: ack } as NodeMessage]);
    };
    client?.on('connect', onConnect);
    client?.on('offline', onOffline);
    client?.on('close', onClose);
    client?.on('packetsend', onSend);
    showStatus();

    this.on('close', (_removed: boolean, done: () => void) => {
      closed = true;
      // The gateway publishes `offline` (retained) and ends its client before the node goes.
      gw.stop()
        .catch((err: Error) => this.log(`qe-fleet: stopping: ${err.message}`))
        .then(() => {
          client?.off('connect', onConnect);
          client?.off('offline', onOffline);
          client?.off('close', onClose);
          client?.off('packetsend', onSend);
          done();
        });
    });
  }

  RED.nodes.registerType('qe-fleet', QeFleet as never);
}
