/**
 * qe-ocpp-server: the config node of the OCPP central system (CentralSystem,
 * src/adapters/ocpp/) on a port of its own or on Node-RED's, that the qe-ocpp nodes share.
 * It lets in the identities its users steer (with their passwords) and says why it cannot run.
 */
import type { Server } from 'node:http';
import type { NodeAPI, NodeDef } from 'node-red';
import { CentralSystem, type KnownCharger, type OcppVersion, type SecurityProfile } from '../..';
import { numberField, parseJsonObject } from '../lib/common';
import { type ConfigNode, ownUsers } from '../lib/config-node';

interface ServerDef extends NodeDef {
  mode?: 'port' | 'path';
  host?: string;
  port?: string | number;
  path?: string;
  protocols?: 'both' | OcppVersion;
  security?: SecurityProfile;
  allowUnknown?: boolean;
  heartbeatSeconds?: string | number;
  callTimeoutSeconds?: string | number;
  maxBadMessages?: string | number;
  authorize?: 'accept' | 'reject';
}

interface ServerCredentials {
  /** JSON object: identity -> password. */
  passwords?: string;
  cert?: string;
  key?: string;
}

export interface OcppServerNode extends ConfigNode<ServerCredentials> {
  central: CentralSystem | null;
  /** Resolves when the server listens (or failed to). */
  ready: Promise<void>;
  port: number | null;
  /** Identities a qe-ocpp node steers: they may connect. */
  setIdentities(owner: string, identities: string[]): void;
}

export default function (RED: NodeAPI) {
  function QeOcppServer(this: OcppServerNode, def: ServerDef) {
    RED.nodes.createNode(this, def);
    // Why the central system cannot run reaches Catch nodes once (an error with a message
    // object; a config node's goes to its users' flows), after the flows have started.
    const failWith = ownUsers(RED, this);
    const fail = (text: string) => failWith(`qe-ocpp-server: ${text}`);
    this.central = null;
    this.port = null;
    this.ready = Promise.resolve();
    const identitiesByOwner = new Map<string, string[]>();
    let passwords: Record<string, string> = {};
    const updateKnown = () => {
      const ids = new Set([...identitiesByOwner.values()].flat());
      const known: KnownCharger[] = [...ids].map((identity) =>
        passwords[identity] !== undefined
          ? { identity, password: passwords[identity] }
          : { identity },
      );
      this.central?.setChargers(known);
    };
    this.setIdentities = (owner, identities) => {
      if (identities.length === 0) identitiesByOwner.delete(owner);
      else identitiesByOwner.set(owner, identities);
      updateKnown();
    };

    const creds = this.credentials ?? {};
    const pw = parseJsonObject(creds.passwords, 'passwords', 'qe-ocpp-server');
    if (pw instanceof Error) {
      fail(pw.message);
      return;
    }
    passwords = Object.fromEntries(Object.entries(pw).map(([k, v]) => [k, String(v)]));
    const mode = def.mode === 'path' ? 'path' : 'port';
    const port = numberField(def.port) ?? 9220;
    if (mode === 'port' && !(Number.isInteger(port) && port >= 0 && port < 65536)) {
      fail(`port must be an integer from 0 to 65535, got ${JSON.stringify(def.port)}`);
      return;
    }
    const security = def.security ?? 'none';
    if (security === 'tls-basic' && mode === 'path') {
      fail(
        "tls-basic needs the server's own port; on Node-RED's port, enable https in Node-RED's settings and use basic",
      );
      return;
    }
    let central: CentralSystem;
    try {
      central = new CentralSystem({
        host: (def.host ?? '').trim() || '0.0.0.0',
        port,
        path: (def.path ?? '').trim() || '/ocpp',
        protocols:
          def.protocols && def.protocols !== 'both' ? [def.protocols] : ['ocpp1.6', 'ocpp2.0.1'],
        security,
        ...(security === 'tls-basic'
          ? { tls: { cert: creds.cert ?? '', key: creds.key ?? '' } }
          : {}),
        allowUnknown: def.allowUnknown === true,
        heartbeatIntervalSeconds: numberField(def.heartbeatSeconds) ?? 300,
        callTimeoutMs: (numberField(def.callTimeoutSeconds) ?? 20) * 1000,
        maxBadMessages: numberField(def.maxBadMessages) ?? 5,
        authorize: def.authorize === 'reject' ? 'reject' : 'accept',
      });
    } catch (err) {
      fail((err as Error).message);
      return;
    }
    this.central = central;
    updateKnown();
    central.on('error', (err: Error) => this.error(`qe-ocpp-server: ${err.message}`));
    central.on(
      'charger',
      (e: { type: string; identity: string; reason?: string; error?: string }) => {
        if (e.type === 'refused') this.warn(`qe-ocpp-server: refused ${e.identity}: ${e.reason}`);
        if (e.type === 'bad-message') this.warn(`qe-ocpp-server: ${e.identity}: ${e.error}`);
      },
    );
    if (mode === 'path') {
      const server = (RED as unknown as { server?: Server }).server;
      if (!server) {
        fail("Node-RED's HTTP server is not available: use a port of its own");
        return;
      }
      central.attach(server);
    } else {
      this.ready = central.listen().then(
        (p) => {
          this.port = p;
          this.log(
            `OCPP central system on ${def.host || '0.0.0.0'}:${p}${central.options.path}/<identity>`,
          );
        },
        (err: Error) => fail(err.message),
      );
    }

    this.on('close', (_removed: boolean, done: () => void) => {
      this.ready
        .then(() => central.close())
        .then(
          () => done(),
          () => done(),
        );
    });
  }

  RED.nodes.registerType('qe-ocpp-server', QeOcppServer as never, {
    credentials: {
      passwords: { type: 'password' },
      cert: { type: 'text' },
      key: { type: 'password' },
    },
  });
}
