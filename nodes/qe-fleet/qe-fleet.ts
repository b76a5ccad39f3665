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
  scheduleMessage,
  scheduleOptions,
  setUp,
  type UserDef,
  useCoordinatorAnd,
} from '../lib/common';
import { NodeConfigError } from '../lib/errors';
import { Status } from '../lib/status';
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
    const types = listField(def.eventTypes);
    const found = setUp(this, () => {
      const { site, config: broker } = useCoordinatorAnd<FleetBrokerNode>(
        RED,
        this,
        def,
        def.broker,
        "no broker: pick a qe-fleet-broker in this node's properties",
      );
      const options = scheduleOptions(def, 'qe-fleet');
      if (options instanceof Error) throw new NodeConfigError('qe-fleet', options.message);
      const unknown = types.filter((t) => !EVENT_TYPES.includes(t as EventType));
      if (unknown.length > 0) {
        throw new NodeConfigError(
          'qe-fleet',
          `unknown event type ${unknown.join(', ')}; use ${EVENT_TYPES.join(', ')}`,
        );
      }
      const settings = broker.settingsFor();
      if ('error' in settings) throw new NodeConfigError('qe-fleet', settings.error);
      return { site, options, settings };
    });
    if (!found) return;
    const { site, options, settings } = found;
    const status = new Status(this);

    let lastSchedule: string | null = null;
    let problem: NetProblem | null = null;
    let closed = false;
    /** The connection was lost and has not come back (the client keeps trying). */
    let down = false;
    let gateway: FleetGateway | null = null;
    const where = target(settings.url);
    status.render = () => {
      if (gateway?.connected) {
        return {
          fill: 'green',
          shape: 'dot',
          text: lastSchedule
            ? RED._('qe-fleet.status.connected-schedule', { schedule: lastSchedule })
            : 'qe-fleet.status.connected',
        };
      }
      if (problem) return problemStatus(RED, 'qe-fleet', problem);
      if (down) return { fill: 'red', shape: 'ring', text: 'qe-fleet.status.disconnected' };
      return { fill: 'yellow', shape: 'ring', text: 'qe-fleet.status.connecting' };
    };
    const note = (state: 'connected' | 'disconnected') => {
      if (closed) return;
      const payload = { status: state, url: settings.url, at: new Date().toISOString() };
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
          status.update();
        },
        // A request the gateway began before a redeploy is finished, acked and sent on; those
        // after it get no ack (the sender sends them again).
        // A schedule: qe-schedule's output (msg.plan, registered by a qe-dispatcher as it is).
        onSchedule: async (conversion: Conversion) => {
          const msg = await scheduleMessage(conversion, options);
          msg.topic = conversion.scheduleId;
          lastSchedule = conversion.scheduleId;
          this.send([msg as NodeMessage, null]);
          status.update();
        },
        // Hand-made commands: their JSON, as qe-schedule's msg.payload.
        onCommands: (commands: Command[]) => {
          this.send([{ topic: 'commands', payload: commands.map(commandToJSON) }, null]);
          status.update();
        },
      });
    } catch (err) {
      refuseInput(this, NodeConfigError.from('qe-fleet', err));
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
      status.update();
    };
    const onOffline = () => {
      down = true;
      note('disconnected');
      status.update();
    };
    const onClose = () => status.update();
    const onSend = (packet: Packet) => {
      if (closed || packet.cmd !== 'publish') return;
      const ack = parseAck(packet.payload);
      if (ack) this.send([null, { topic: packet.topic, payload: ack } as NodeMessage]);
    };
    client?.on('connect', onConnect);
    client?.on('offline', onOffline);
    client?.on('close', onClose);
    client?.on('packetsend', onSend);
    status.update();

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
