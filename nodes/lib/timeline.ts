/**
 * The coordinator's timeline for the editor's sidebar tab, wired into Node-RED: an admin
 * endpoint that answers a snapshot of a coordinator's site (and leases its feed), renewals of
 * the lease, and the deltas published over Node-RED's comms on
 * `qe-coordinator/<id>/timeline` while leased. The logic is the core's TimelineFeed.
 *
 *   GET <admin>/qe-coordinator/<id>/timeline              the snapshot; starts the lease
 *   GET <admin>/qe-coordinator/<id>/timeline?lease=renew  {active}: extends a running lease
 *
 * Settings (settings.js, optional): `qeTimeline: { throttleMs, leaseMs }` (250, 30000).
 */
import type { NodeAPI } from 'node-red';
import { runSliced, type Site, stringifySteps, TimelineFeed } from '../..';

/** The comms topic of a coordinator's deltas. */
export function timelineTopic(nodeId: string): string {
  return `qe-coordinator/${nodeId}/timeline`;
}

/** The running feeds, by coordinator id, per admin app (one per runtime). */
const feedsByApp = new WeakMap<object, Map<string, TimelineFeed>>();

function feedsOf(RED: NodeAPI): Map<string, TimelineFeed> {
  const app = RED.httpAdmin as unknown as object;
  let feeds = feedsByApp.get(app);
  if (!feeds) {
    feeds = new Map();
    feedsByApp.set(app, feeds);
    addRoute(RED, feeds);
  }
  return feeds;
}

function setting(RED: NodeAPI, name: 'throttleMs' | 'leaseMs'): number | undefined {
  const s = (RED.settings as unknown as { qeTimeline?: Record<string, unknown> }).qeTimeline;
  const v = s?.[name];
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : undefined;
}

function addRoute(RED: NodeAPI, feeds: Map<string, TimelineFeed>): void {
  RED.httpAdmin.get(
    '/qe-coordinator/:id/timeline',
    RED.auth.needsPermission('qe-coordinator.read'),
    (req, res) => {
      const id = String(req.params.id);
      const feed = feeds.get(id);
      if (!feed) {
        res.status(404).json({
          error: `qe-coordinator ${id}: no running site (deploy the coordinator, or see why it did not start)`,
        });
        return;
      }
      const lease = req.query.lease;
      if (lease === 'renew') {
        res.json({ active: feed.renew() });
        return;
      }
      if (lease !== undefined) {
        res.status(400).json({ error: `lease: must be "renew" or absent, got ${String(lease)}` });
        return;
      }
      // Built and written as JSON in slices of a few ms: a snapshot of 2,000 assets x 96
      // slots is 192,000 commands, 42 MB of JSON.
      feed
        .snapshotAsync()
        .then((snap) => runSliced(stringifySteps(snap)))
        .then(
          (text) => {
            res.type('application/json').send(text);
          },
          (err: unknown) => {
            res.status(500).json({ error: `qe-coordinator ${id}: ${(err as Error).message}` });
          },
        );
    },
  );
}

/** Serves the timeline of `site` for coordinator `nodeId`; returns what stops it (on close). */
export function serveTimeline(RED: NodeAPI, nodeId: string, site: Site): () => void {
  const feeds = feedsOf(RED);
  const topic = timelineTopic(nodeId);
  const throttleMs = setting(RED, 'throttleMs');
  const leaseMs = setting(RED, 'leaseMs');
  const feed = new TimelineFeed(site, {
    publish: (delta) => RED.comms.publish(topic, delta, false),
    ...(throttleMs !== undefined ? { throttleMs } : {}),
    ...(leaseMs !== undefined ? { leaseMs } : {}),
  });
  feeds.set(nodeId, feed);
  return () => {
    feed.stop();
    if (feeds.get(nodeId) === feed) feeds.delete(nodeId);
  };
}
