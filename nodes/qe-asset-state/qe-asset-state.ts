/**
 * qe-asset-state: the state machine of one asset (an EV charger or battery preset, or a
 * custom definition) in the site: triggers and forced states from messages, and every change
 * of its state (whoever caused it) on the output and in the status.
 */
import type { Node, NodeAPI, NodeMessage, NodeMessageInFlow } from 'node-red';
import { EventType, type StateChange, type StateMachineDefinition, summarizeEvent } from '../..';
import { parseJsonObject, setUp, type UserDef, useCoordinator, withSummary } from '../lib/common';
import { NodeConfigError, NodeInputError } from '../lib/errors';
import { type Fill, Status } from '../lib/status';

interface AssetStateDef extends UserDef {
  assetId: string;
  preset?: 'ev-charger' | 'battery' | 'custom';
  definition?: string;
}

const COLOURS: Record<string, Fill> = {
  AVAILABLE: 'green',
  CHARGING: 'green',
  IDLE: 'green',
  DISCHARGING: 'green',
  PREPARING: 'yellow',
  SUSPENDED: 'yellow',
  FINISHING: 'yellow',
  FAULTED: 'red',
  UNAVAILABLE: 'grey',
};

export default function (RED: NodeAPI) {
  function QeAssetState(this: Node, def: AssetStateDef) {
    RED.nodes.createNode(this, def);
    const assetId = (def.assetId ?? '').trim();
    const found = setUp(this, () => {
      const { site } = useCoordinator(RED, this, def);
      if (assetId === '') throw new NodeConfigError('qe-asset-state', 'set the asset id');
      try {
        let kind: 'ev-charger' | 'battery' | StateMachineDefinition =
          def.preset === 'battery' ? 'battery' : 'ev-charger';
        if (def.preset === 'custom') {
          const d = parseJsonObject(def.definition, 'definition', 'qe-asset-state');
          if (d instanceof Error) throw d;
          kind = d as unknown as StateMachineDefinition;
        }
        return { site, machine: site.ensureStateMachine(assetId, kind, this.id) };
      } catch (err) {
        throw new NodeConfigError(
          'qe-asset-state',
          `qe-asset-state ${assetId}: ${(err as Error).message}`,
        );
      }
    });
    if (!found) return;
    const { site, machine: m } = found;
    const status = new Status(this);
    const show = (state: string) => status.show(COLOURS[state] ?? 'blue', 'dot', state);
    show(m.currentState);

    // Every change of the asset's state goes out, whoever caused it (this node, a device).
    let current: { msg: NodeMessageInFlow; send: (msg: NodeMessage) => void } | null = null;
    const off = m.onChange((change: StateChange) => {
      show(change.to_state);
      const summary = () => summarizeEvent({ type: EventType.STATE_CHANGED, payload: change });
      if (current) {
        current.msg.payload = change;
        current.send(withSummary(current.msg, summary));
        current = null;
      } else {
        this.send(withSummary({ topic: assetId, payload: change }, summary));
      }
    });

    this.on('input', (msg: NodeMessageInFlow, send, done) => {
      const p = msg.payload as unknown;
      try {
        current = { msg, send };
        if (typeof p === 'string') {
          m.trigger(p.trim());
        } else if (
          p &&
          typeof p === 'object' &&
          typeof (p as { state?: unknown }).state === 'string'
        ) {
          const { state, reason } = p as { state: string; reason?: unknown };
          m.forceState(state, typeof reason === 'string' ? reason : 'set by flow');
        } else {
          throw new NodeInputError(
            'qe-asset-state',
            `qe-asset-state ${assetId}: msg.payload must be a trigger name (one of ${m.availableTriggers().join(', ')}) or {state: "<state>"}, got ${p === null ? 'null' : typeof p}`,
          );
        }
        current = null;
        done();
      } catch (err) {
        current = null;
        done(err as Error);
      }
    });

    this.on('close', (removed: boolean, done: () => void) => {
      off();
      if (removed) site.releaseStateMachine(assetId, this.id);
      done();
    });
  }

  RED.nodes.registerType('qe-asset-state', QeAssetState as never);
}
