/**
 * qe-modbus-connection: the config node of one Modbus bus (TCP or RTU), a ModbusConnection
 * (src/adapters/modbus/) that the qe-modbus nodes on it share. It logs the bus's changes; its
 * users show the state and the cause in their status.
 */
import type { NodeAPI, NodeDef } from 'node-red';
import { ModbusConnection } from '../..';
import { numberField } from '../lib/common';
import { type ConfigNode, ownUsers } from '../lib/config-node';

interface ConnectionDef extends NodeDef {
  transport?: 'tcp' | 'rtu';
  host?: string;
  port?: string | number;
  timeoutMs?: string | number;
  serialPath?: string;
  baudRate?: string | number;
  parity?: 'none' | 'even' | 'odd';
  dataBits?: string | number;
  stopBits?: string | number;
  queueLimit?: string | number;
}

export interface ModbusConnectionNode extends ConfigNode {
  connection: ModbusConnection | null;
}

export default function (RED: NodeAPI) {
  function QeModbusConnection(this: ModbusConnectionNode, def: ConnectionDef) {
    RED.nodes.createNode(this, def);
    const fail = ownUsers(RED, this);
    this.connection = null;
    const transport = def.transport === 'rtu' ? 'rtu' : 'tcp';
    let connection: ModbusConnection;
    try {
      connection = new ModbusConnection({
        transport,
        host: (def.host ?? '').trim(),
        port: numberField(def.port) ?? 502,
        timeoutMs: numberField(def.timeoutMs) ?? 1000,
        serialPath: (def.serialPath ?? '').trim(),
        baudRate: numberField(def.baudRate) ?? 9600,
        parity: def.parity ?? 'none',
        dataBits: (numberField(def.dataBits) ?? 8) as 7 | 8,
        stopBits: (numberField(def.stopBits) ?? 1) as 1 | 2,
        queueLimit: numberField(def.queueLimit) ?? 200,
      });
    } catch (err) {
      // Reported once the flows have started, with a message: it reaches the users' Catch nodes.
      fail(`qe-modbus-connection: ${(err as Error).message}`);
      return;
    }
    this.connection = connection;
    // Config nodes have no status of their own: users show the state and the cause (the
    // connection's `problem`); log the changes. One warning per outage and cause, not one
    // per reconnect attempt.
    let warned: string | null = null;
    connection.on('state', (s: string) => {
      if (s === 'connected') {
        warned = null;
        this.log(`connected to ${connection.target}`);
      }
      const cause = connection.problem?.text ?? connection.error;
      if (s === 'disconnected' && connection.error && cause !== warned) {
        warned = cause;
        this.warn(`qe-modbus-connection: ${connection.error}; reconnecting`);
      }
    });
    connection.start();
    this.on('close', (_removed: boolean, done: () => void) => {
      connection.close().then(
        () => done(),
        () => done(),
      );
    });
  }

  RED.nodes.registerType('qe-modbus-connection', QeModbusConnection as never);
}
