/**
 * qe-fleet-broker: the config node of an MQTT broker for the fleet link. It holds the
 * connection options (URL, client id, protocol version, keep-alive, topic prefix, the
 * username and password as Node-RED credentials, TLS from a Node-RED `tls-config` node);
 * each qe-fleet node that points at it owns one connection (a FleetGateway) for its site.
 */
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { numberField } from '../lib/common';
import { type ConfigNode, ownUsers } from '../lib/config-node';

interface BrokerDef extends NodeDef {
  url?: string;
  clientId?: string;
  protocolVersion?: string | number;
  keepalive?: string | number;
  prefix?: string;
  tls?: string;
}

interface BrokerCredentials {
  username?: string;
  password?: string;
}

/** What a qe-fleet node needs to connect: the URL, MQTT.js options, the topic prefix. */
export interface BrokerSettings {
  url: string;
  prefix: string;
  /** MQTT.js client options (IClientOptions), without the last will (the gateway's). */
  mqtt: Record<string, unknown>;
}

export interface FleetBrokerNode extends ConfigNode<BrokerCredentials> {
  /** The settings for one site's connection, or an error text. */
  settingsFor(): BrokerSettings | { error: string };
}

interface TlsConfigNode extends Node {
  addTLSOptions(opts: Record<string, unknown>): void;
}

const SCHEMES = ['mqtt:', 'mqtts:', 'ws:', 'wss:'];

export default function (RED: NodeAPI) {
  function QeFleetBroker(this: FleetBrokerNode, def: BrokerDef) {
    RED.nodes.createNode(this, def);
    // Unusable options are not reported here: each qe-fleet node refuses input with them.
    ownUsers(RED, this);
    const fail = (text: string) => {
      this.failure ??= `qe-fleet-broker: ${text}`;
    };

    const url = (def.url ?? '').trim() || 'mqtt://127.0.0.1:1883';
    let parsed: URL | null = null;
    try {
      parsed = new URL(url);
    } catch {
      fail(`the broker URL ${JSON.stringify(url)} is not a URL: write mqtt://host:1883`);
    }
    if (parsed && !SCHEMES.includes(parsed.protocol)) {
      fail(`the broker URL must start with mqtt://, mqtts://, ws:// or wss://, got ${url}`);
    }
    const version = Number(def.protocolVersion ?? 4);
    if (version !== 4 && version !== 5) {
      fail(`protocol version must be 4 (MQTT 3.1.1) or 5, got ${def.protocolVersion}`);
    }
    const keepalive = numberField(def.keepalive) ?? 60;
    if (!(Number.isInteger(keepalive) && keepalive >= 0 && keepalive <= 65535)) {
      fail(`keep-alive must be whole seconds from 0 to 65535, got ${def.keepalive}`);
    }
    const prefix = (def.prefix ?? '').trim().replace(/\/+$/, '') || 'qe/v1';
    if (/[+#]/.test(prefix) || prefix.startsWith('/')) {
      fail(`the topic prefix may not contain + or # nor start with /, got ${prefix}`);
    }
    const clientId = (def.clientId ?? '').trim();

    const options: Record<string, unknown> = {
      protocolVersion: version,
      keepalive,
      clean: true,
    };
    const creds = this.credentials ?? {};
    if (creds.username) options.username = creds.username;
    if (creds.password) options.password = creds.password;
    if (def.tls) {
      const tlsNode = RED.nodes.getNode(def.tls) as TlsConfigNode | null;
      if (tlsNode && typeof tlsNode.addTLSOptions === 'function') tlsNode.addTLSOptions(options);
      else fail('the TLS configuration it points at is missing');
    }

    this.settingsFor = () => {
      if (this.failure) return { error: this.failure };
      // One connection a site: a fixed client id can serve one site only.
      const users = Object.values(this.users).filter((u) => u.type === 'qe-fleet');
      if (clientId !== '' && users.length > 1) {
        return {
          error: `qe-fleet-broker: client id ${clientId} is set, but ${users.length} qe-fleet nodes use this broker (one connection each): clear the client id, or give each site a broker node of its own`,
        };
      }
      return {
        url,
        prefix,
        mqtt: clientId === '' ? { ...options } : { ...options, clientId },
      };
    };
  }

  RED.nodes.registerType('qe-fleet-broker', QeFleetBroker as never, {
    credentials: {
      username: { type: 'text' },
      password: { type: 'password' },
    },
  });
}
