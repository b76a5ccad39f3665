/**
 * qe-coordinator: the config node of one site. It makes the Site (engine, registry, limits,
 * event bus; src/site.ts) from its properties, persists it (a journal) when asked, loading
 * its saved state in slices, serves its timeline to the editor, and is the coordinator every
 * other node of the site points at.
 */
import path from 'node:path';
import type { NodeAPI, NodeDef } from 'node-red';
import {
  type EngineConfig,
  type HorizonEnd,
  JournalStore,
  PartialRestoreError,
  resolveConfig,
  Site,
} from '../..';
import { type CoordinatorNode, numberField, parseJsonObject } from '../lib/common';
import { ownUsers, whenFlowsStarted } from '../lib/config-node';
import { serveTimeline } from '../lib/timeline';

interface CoordinatorDef extends NodeDef {
  siteId: string;
  commandTimeoutSeconds?: string | number;
  maxRetries?: string | number;
  retryBackoffFactor?: string | number;
  retryBaseSeconds?: string | number;
  retryMaxSeconds?: string | number;
  staleStateSeconds?: string | number;
  dispatchIntervalSeconds?: string | number;
  deadbandKw?: string | number;
  horizonEnd?: string;
  fallbackKw?: string;
  silenceSeconds?: string | number;
  persist?: boolean;
  /** The site's limits (LimitsConfig) as JSON text; empty: no limits. */
  limits?: string;
}

const NUMERIC: (keyof EngineConfig & keyof CoordinatorDef)[] = [
  'commandTimeoutSeconds',
  'maxRetries',
  'retryBackoffFactor',
  'retryBaseSeconds',
  'retryMaxSeconds',
  'staleStateSeconds',
  'dispatchIntervalSeconds',
  'deadbandKw',
  'silenceSeconds',
];

/** The engine settings of a coordinator's properties, or an Error naming the one that is wrong. */
export function configFromDef(def: CoordinatorDef): Partial<EngineConfig> | Error {
  const config: Partial<EngineConfig> = {};
  for (const key of NUMERIC) {
    const v = numberField(def[key]);
    if (v !== undefined) (config as Record<string, number>)[key] = v;
  }
  if (def.horizonEnd === 'fallback') {
    const fb = parseJsonObject(def.fallbackKw, 'fallbackKw', 'qe-coordinator');
    if (fb instanceof Error) return fb;
    config.horizonEnd = { fallbackKw: fb as Record<string, number> } as HorizonEnd;
  }
  try {
    resolveConfig(config);
  } catch (err) {
    return err as Error;
  }
  return config;
}

/**
 * The limits of a coordinator's properties (parsed JSON, validated by the Site), undefined
 * when the field is empty, or an Error naming the field.
 */
export function limitsFromDef(def: CoordinatorDef): unknown {
  const text = def.limits;
  if (text === undefined || text === null || (typeof text === 'string' && text.trim() === '')) {
    return undefined;
  }
  return parseJsonObject(text, 'limits', 'qe-coordinator');
}

export default function (RED: NodeAPI) {
  function QeCoordinator(this: CoordinatorNode, def: CoordinatorDef) {
    RED.nodes.createNode(this, def);
    // A coordinator that cannot make its site says so now (its users refuse input with it).
    ownUsers(RED, this);
    this.site = null;

    const siteId = (def.siteId ?? '').trim() || this.id;
    const config = configFromDef(def);
    const limits = limitsFromDef(def);
    if (config instanceof Error || limits instanceof Error) {
      const bad = config instanceof Error ? config : (limits as Error);
      this.failure = `qe-coordinator ${siteId}: ${bad.message}`;
      this.error(this.failure);
      return;
    }
    const userDir = (RED.settings as unknown as { userDir?: string }).userDir ?? process.cwd();
    const persist = def.persist !== false;
    // A journal of changes (qe-coordinator/<id>.journal/); a state file of an older version
    // (<id>.json) is its first snapshot.
    const base = path.join(userDir, 'qe-coordinator', this.id.replace(/[^\w.-]/g, '_'));
    const store = persist
      ? new JournalStore(`${base}.journal`, {
          legacyFile: `${base}.json`,
          onError: (e) => report(e),
        })
      : null;
    // The runtime passes a config node's error on to the Catch nodes of its users' flows
    // only when the error comes with a message: msg.payload = {siteId, problems} (the
    // entries of the saved state that were left out, if any).
    const report = (err: Error) =>
      this.error(err.message, {
        topic: 'qe-coordinator',
        payload: { siteId, problems: err instanceof PartialRestoreError ? err.problems : [] },
      });
    let site: Site;
    try {
      // The saved state is loaded in slices after the flows start (seconds for 160,000
      // pending commands, which must not hold Node-RED's event loop): until then the site
      // holds nothing, its loop waits, and so do the schedules, commands and readings sent to it.
      site = new Site({ siteId, config, store, onError: report, limits, load: 'in-slices' });
    } catch (err) {
      // A LimitsConfigError names the field (circuits[1].importKw ...): users refuse input with it.
      const e = err as Error;
      const where =
        e.name === 'LimitsConfigError' && !e.message.startsWith('limits') ? 'limits: ' : '';
      this.failure = `qe-coordinator ${siteId}: ${where}${e.message}`;
      this.error(this.failure);
      return;
    }
    this.site = site;
    let closed = false;
    site.loaded
      .then(() => {
        const { loadError } = site;
        // Reported once the flows have started, so that it reaches the users' Catch nodes.
        if (loadError && !closed) whenFlowsStarted(RED, this, () => report(loadError));
      })
      .catch((err: Error) => report(err));
    site.start();
    // The editor's timeline tab: costs nothing until an editor asks for it.
    const stopTimeline = serveTimeline(RED, this.id, site);

    this.on('close', (_removed: boolean, done: () => void) => {
      closed = true;
      stopTimeline();
      site.stop().then(
        () => done(),
        () => done(),
      );
    });
  }

  RED.nodes.registerType('qe-coordinator', QeCoordinator as never);
}
