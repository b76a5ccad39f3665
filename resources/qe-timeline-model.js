/*
 * The data of the "site timeline" sidebar tab (resources/qe-timeline.js draws it): a
 * coordinator's snapshot (src/timeline.ts, TimelineSnapshot) indexed per asset, the deltas
 * applied to it in order, the filters (asset, status) and the time window shown. No DOM:
 * in the editor it is window.QeTimelineModel; under Node (the unit test) a CommonJS module.
 */
((root, factory) => {
  if (typeof module === 'object' && module.exports) module.exports = factory();
  else {
    root.QeTimelineModel = factory();
    // The tab (qe-timeline.js) ran first and waits for the model: start it now.
    const start = root.QeTimelineOnModel;
    root.QeTimelineOnModel = undefined;
    if (typeof start === 'function') start();
  }
})(typeof self === 'undefined' ? this : self, () => {
  const STATUSES = [
    'pending',
    'held',
    'dispatched',
    'completed',
    'failed',
    'timed_out',
    'cancelled',
  ];
  const WINDOWS = { all: 0, '1h': 3600e3, '6h': 6 * 3600e3, '24h': 24 * 3600e3 };
  /** How long a bar is drawn for a command without an end (valid until replaced). */
  const OPEN_MS = 60e3;
  /** Measurements kept per asset in the tab. */
  const KEEP_MEASUREMENTS = 400;

  function createModel() {
    return {
      siteId: '',
      seq: -1,
      /** Runtime clock minus the browser's, from the last message. */
      skew: 0,
      assets: new Map(),
      byId: new Map(),
      /** The assets shown (filtered), sorted by id. */
      rows: [],
      filterAsset: '',
      filterStatus: '',
      window: 'all',
      /** Assets changed since the last `finish`. */
      touched: new Set(),
    };
  }

  function assetOf(m, id) {
    let a = m.assets.get(id);
    if (!a) {
      a = { id, state: null, states: [], cmds: [], meas: [], maxKw: 0 };
      m.assets.set(id, a);
    }
    m.touched.add(a);
    return a;
  }

  function addCommand(m, c) {
    const old = m.byId.get(c.id);
    if (old) {
      Object.assign(old, c);
      m.touched.add(m.assets.get(c.assetId));
      return;
    }
    assetOf(m, c.assetId).cmds.push(c);
    m.byId.set(c.id, c);
  }

  /** Replaces everything with a snapshot; `clock` is the browser's now. */
  function load(m, snap, clock) {
    m.assets = new Map();
    m.byId = new Map();
    m.touched = new Set();
    m.siteId = snap.siteId;
    m.seq = snap.seq;
    m.skew = snap.now - clock;
    for (const s of snap.assets) {
      const a = assetOf(m, s.id);
      a.state = s.state;
      a.states = s.states.slice();
    }
    for (const c of snap.commands) addCommand(m, c);
    for (const id of Object.keys(snap.measurements || {})) {
      assetOf(m, id).meas = snap.measurements[id].slice();
    }
  }

  /**
   * Applies one delta: 'applied', 'stale' (not newer than what the model has: ignored) or
   * 'resync' (too much changed at once: ask for a snapshot).
   */
  function apply(m, d, clock) {
    if (d.seq <= m.seq) return 'stale';
    m.seq = d.seq;
    m.skew = d.now - clock;
    if (d.resync) return 'resync';
    for (const c of d.commands) addCommand(m, c);
    for (const [id, at, state] of d.states) {
      const a = assetOf(m, id);
      a.state = state;
      a.states.push([at, state]);
    }
    for (const [id, at, kw] of d.measurements) {
      const a = assetOf(m, id);
      a.meas.push([at, kw]);
      if (a.meas.length > KEEP_MEASUREMENTS) a.meas.splice(0, a.meas.length / 2);
    }
    return 'applied';
  }

  /** After loads and applies: sorts the changed assets' commands, then filters the rows. */
  function finish(m) {
    for (const a of m.touched) {
      if (!a) continue;
      a.cmds.sort((x, y) => x.at - y.at);
      let max = 0;
      for (const c of a.cmds) if (c.kw > max) max = c.kw;
      for (const p of a.meas) if (Math.abs(p[1]) > max) max = Math.abs(p[1]);
      a.maxKw = max;
    }
    m.touched = new Set();
    filterRows(m);
  }

  function filterRows(m) {
    const f = m.filterAsset.trim().toLowerCase();
    const st = m.filterStatus;
    const rows = [];
    for (const a of m.assets.values()) {
      if (f && !a.id.toLowerCase().includes(f)) continue;
      if (st && !a.cmds.some((c) => c.status === st)) continue;
      rows.push(a);
    }
    rows.sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
    m.rows = rows;
  }

  /** When a command's bar ends. */
  function endOf(c) {
    return c.until ?? c.at + OPEN_MS;
  }

  /** The time window shown, [from, to] in the runtime's epoch ms; `clock`: the browser's now. */
  function timeWindow(m, clock) {
    const now = clock + m.skew;
    const w = WINDOWS[m.window];
    if (w) return [now - w / 4, now + (3 * w) / 4];
    let lo = Number.POSITIVE_INFINITY;
    let hi = Number.NEGATIVE_INFINITY;
    for (const a of m.assets.values()) {
      const n = a.cmds.length;
      if (n === 0) continue;
      lo = Math.min(lo, a.cmds[0].at);
      hi = Math.max(hi, endOf(a.cmds[n - 1]));
    }
    if (!Number.isFinite(lo)) return [now - 1800e3, now + 1800e3];
    lo = Math.min(lo, now);
    hi = Math.max(hi, now);
    const pad = (hi - lo) * 0.02 || OPEN_MS;
    return [lo - pad, hi + pad];
  }

  /** The command of asset row `a` at time `t`, or null. */
  function commandAt(a, t) {
    let found = null;
    for (const c of a.cmds) if (c.at <= t && t < endOf(c)) found = c;
    return found;
  }

  return {
    STATUSES,
    WINDOWS,
    createModel,
    load,
    apply,
    finish,
    filterRows,
    timeWindow,
    endOf,
    commandAt,
  };
});
