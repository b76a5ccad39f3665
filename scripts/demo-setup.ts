/**
 * What the demo (scripts/demo.ts) sets up before it starts: its configuration from the
 * QE_DEMO_* and QE_MQTT_URL variables (each checked, with an error naming the variable), the
 * demo flow with the ports of this run, and listening on a port with an error that says
 * which variable sets it.
 */
import fs from 'node:fs';
import type http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '..');
const FLOW_FILE = path.join(__dirname, 'demo-flow.json');

// --- configuration

export interface DemoConfig {
  host: string;
  port: number;
  ocppPort: number;
  modbusPort: number;
  userDir: string;
  logLevel: string;
  mqttPort: number;
  /** A real broker to use instead of the in-process one; null: the in-process one. */
  mqttUrl: string | null;
}

function portFrom(name: string, fallback: number, allowZero: boolean): number {
  const text = process.env[name];
  if (text === undefined || text.trim() === '') return fallback;
  const n = Number(text);
  const min = allowZero ? 0 : 1;
  if (!Number.isInteger(n) || n < min || n > 65535) {
    throw new Error(`${name} must be a TCP port from ${min} to 65535, got ${JSON.stringify(text)}`);
  }
  return n;
}

export function readConfig(): DemoConfig {
  const logLevel = (process.env.QE_DEMO_LOG_LEVEL ?? '').trim() || 'warn';
  const levels = ['off', 'fatal', 'error', 'warn', 'info', 'debug', 'trace'];
  if (!levels.includes(logLevel)) {
    throw new Error(`QE_DEMO_LOG_LEVEL must be one of ${levels.join(', ')}, got ${logLevel}`);
  }
  return {
    host: (process.env.QE_DEMO_HOST ?? '').trim() || '127.0.0.1',
    port: portFrom('QE_DEMO_PORT', 1880, true),
    // The flow must name the central system's port before it starts: no "any free port".
    ocppPort: portFrom('QE_DEMO_OCPP_PORT', 9220, false),
    modbusPort: portFrom('QE_DEMO_MODBUS_PORT', 5020, true),
    userDir: path.resolve(process.env.QE_DEMO_USERDIR?.trim() || path.join(ROOT, '.demo')),
    logLevel,
    mqttPort: portFrom('QE_DEMO_MQTT_PORT', 1883, true),
    mqttUrl: mqttUrlFrom(process.env.QE_MQTT_URL),
  };
}

function mqttUrlFrom(text: string | undefined): string | null {
  const url = (text ?? '').trim();
  if (url === '') return null;
  if (!/^(mqtts?|wss?):\/\/[^/\s]+/.test(url)) {
    throw new Error(
      `QE_MQTT_URL must be a broker URL like mqtt://host:1883, got ${JSON.stringify(url)}`,
    );
  }
  return url;
}

// --- the flow

export interface FlowNode {
  id: string;
  type: string;
  [key: string]: unknown;
}

/** The demo flow with this run's ports for the central system and the battery's bus, and
 * the URL of the fleet broker. */
export function demoFlow(ocppPort: number, modbusPort: number, mqttUrl: string): FlowNode[] {
  const flow = JSON.parse(fs.readFileSync(FLOW_FILE, 'utf8')) as FlowNode[];
  for (const n of flow) {
    if (n.type === 'qe-ocpp-server') {
      Object.assign(n, { host: '127.0.0.1', port: ocppPort, name: `central system :${ocppPort}` });
    } else if (n.type === 'qe-fleet-broker') {
      Object.assign(n, { url: mqttUrl, name: `fleet broker ${mqttUrl}` });
    } else if (n.type === 'qe-modbus-connection') {
      Object.assign(n, {
        host: '127.0.0.1',
        port: modbusPort,
        name: `battery simulator :${modbusPort}`,
      });
    }
  }
  return flow;
}

// --- helpers

export function listen(server: http.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** Rejects with a clear error if `port` is taken (the central system would only log it). */
export async function assertFree(port: number, host: string, what: string): Promise<void> {
  const probe = net.createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen(port, host, () => resolve());
    });
  } catch (err) {
    throw explainListen(err, port, what);
  }
  await new Promise((resolve) => probe.close(resolve));
}

export function explainListen(err: unknown, port: number, what: string): Error {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') {
    return new Error(`port ${port} (${what}) is in use: stop what uses it or set another port`);
  }
  return new Error(`${what} cannot listen on port ${port}: ${(err as Error).message}`);
}

export function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}
