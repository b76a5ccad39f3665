/*
 * The "site timeline" sidebar tab of the Node-RED editor (loaded by qe-coordinator.html from
 * resources/, no CDN): for a chosen qe-coordinator, one row per asset with its setpoints as
 * steps, each command as a bar coloured by status, its state over time, its measured power,
 * and a "now" line; hovering a bar shows the command's history. A snapshot comes from the
 * admin endpoint <admin>/qe-coordinator/<id>/timeline, then deltas over RED.comms on
 * qe-coordinator/<id>/timeline; the lease is renewed every 10 s while the tab is visible.
 * Drawing is on one canvas, only the rows in view (virtual scrolling) and only the time
 * window shown; the labels of the rows in view are DOM elements (data-asset, ...).
 * window.QeTimeline exposes load/apply/renderNow for tests and debugging.
 */
(() => {
  const RED = window.RED;
  if (!RED || window.QeTimeline) return;
  const ROW_H = 24;
  const LABEL_W = 96;
  const RENEW_MS = 10000;
  const STATUSES = [
    'pending',
    'held',
    'dispatched',
    'completed',
    'failed',
    'timed_out',
    'cancelled',
  ];
  const COLORS = {
    pending: '#b0b0b0',
    held: '#9b59b6',
    dispatched: '#2d7dd2',
    completed: '#3aa655',
    failed: '#d9534f',
    timed_out: '#f0ad4e',
    cancelled: '#6b6b6b',
  };
  const WINDOWS = { all: 0, '1h': 3600e3, '6h': 6 * 3600e3, '24h': 24 * 3600e3 };

  const model = {
    coord: '',
    siteId: '',
    seq: -1,
    now: 0,
    /** Runtime clock minus the browser's, from the last message. */
    skew: 0,
    assets: new Map(),
    byId: new Map(),
    rows: [],
    filterAsset: '',
    filterStatus: '',
    window: 'all',
    buffered: [],
    loading: false,
  };
  const view = { root: null, scroll: null, spacer: null, canvas: null, labels: null, tip: null };
  const stats = { renders: 0, lastRenderMs: 0, maxRenderMs: 0, deltas: 0 };
  let topic = '';
  let renewTimer = null;
  let frame = 0;

  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const hhmm = (t) => new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

  function assetOf(id) {
    let a = model.assets.get(id);
    if (!a) {
      a = { id, state: null, states: [], cmds: [], meas: [], maxKw: 0, unsorted: false };
      model.assets.set(id, a);
    }
    return a;
  }

  function addCommand(c) {
    const old = model.byId.get(c.id);
    if (old) {
      Object.assign(old, c);
      return;
    }
    const a = assetOf(c.assetId);
    a.cmds.push(c);
    a.unsorted = true;
    model.byId.set(c.id, c);
  }

  function finish() {
    for (const a of model.assets.values()) {
      if (a.unsorted) a.cmds.sort((x, y) => x.at - y.at);
      a.unsorted = false;
      let max = 0;
      for (const c of a.cmds) if (c.kw > max) max = c.kw;
      for (const m of a.meas) if (Math.abs(m[1]) > max) max = Math.abs(m[1]);
      a.maxKw = max;
    }
    filterRows();
  }

  /** Replaces everything with a snapshot, then applies the deltas that came after it. */
  function load(snap) {
    model.assets = new Map();
    model.byId = new Map();
    model.siteId = snap.siteId;
    model.seq = snap.seq;
    model.now = snap.now;
    model.skew = snap.now - Date.now();
    for (const s of snap.assets) {
      const a = assetOf(s.id);
      a.state = s.state;
      a.states = s.states.slice();
    }
    for (const c of snap.commands) addCommand(c);
    for (const id of Object.keys(snap.measurements || {})) {
      assetOf(id).meas = snap.measurements[id].slice();
    }
    const later = model.buffered.filter((d) => d.seq > snap.seq);
    model.buffered = [];
    for (const d of later) apply(d, true);
    finish();
    schedule();
  }

  /** Applies one delta from the runtime. */
  function apply(d, inLoad) {
    if (model.loading) {
      model.buffered.push(d);
      return;
    }
    if (d.seq <= model.seq) return;
    if (d.resync) {
      fetchSnapshot();
      return;
    }
    stats.deltas++;
    model.seq = d.seq;
    model.now = d.now;
    model.skew = d.now - Date.now();
    for (const c of d.commands) addCommand(c);
    for (const [id, at, state] of d.states) {
      const a = assetOf(id);
      a.state = state;
      a.states.push([at, state]);
    }
    for (const [id, at, kw] of d.measurements) {
      const a = assetOf(id);
      a.meas.push([at, kw]);
      if (a.meas.length > 400) a.meas.splice(0, 200);
    }
    if (!inLoad) {
      finish();
      schedule();
    }
  }

  function filterRows() {
    const f = model.filterAsset.trim().toLowerCase();
    const st = model.filterStatus;
    const rows = [];
    for (const a of model.assets.values()) {
      if (f && !a.id.toLowerCase().includes(f)) continue;
      if (st && !a.cmds.some((c) => c.status === st)) continue;
      rows.push(a);
    }
    rows.sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
    model.rows = rows;
  }

  /** The time window shown: [from, to], epoch ms. */
  function timeWindow() {
    const now = Date.now() + model.skew;
    const w = WINDOWS[model.window];
    if (w) return [now - w / 4, now + (3 * w) / 4];
    let lo = Number.POSITIVE_INFINITY;
    let hi = Number.NEGATIVE_INFINITY;
    for (const a of model.assets.values()) {
      const n = a.cmds.length;
      if (n === 0) continue;
      lo = Math.min(lo, a.cmds[0].at);
      const last = a.cmds[n - 1];
      hi = Math.max(hi, last.until ?? last.at + 60e3);
    }
    if (!Number.isFinite(lo)) return [now - 1800e3, now + 1800e3];
    lo = Math.min(lo, now);
    hi = Math.max(hi, now);
    const pad = (hi - lo) * 0.02 || 60e3;
    return [lo - pad, hi + pad];
  }

  function schedule() {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      renderNow();
    });
  }

  /** Draws the rows in view now; returns how long it took, ms. */
  function renderNow() {
    const t0 = performance.now();
    if (!view.canvas || !view.root.isConnected) return 0;
    const w = view.scroll.clientWidth;
    const h = view.scroll.clientHeight;
    const dpr = window.devicePixelRatio || 1;
    if (view.canvas.width !== Math.round(w * dpr) || view.canvas.height !== Math.round(h * dpr)) {
      view.canvas.width = Math.round(w * dpr);
      view.canvas.height = Math.round(h * dpr);
      view.canvas.style.width = `${w}px`;
      view.canvas.style.height = `${h}px`;
    }
    view.spacer.style.height = `${model.rows.length * ROW_H}px`;
    const ctx = view.canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const [from, to] = timeWindow();
    const plotW = Math.max(10, w - LABEL_W);
    const x = (t) => LABEL_W + ((t - from) / (to - from)) * plotW;
    const top = view.scroll.scrollTop;
    const first = Math.max(0, Math.floor(top / ROW_H));
    const last = Math.min(model.rows.length, Math.ceil((top + h) / ROW_H));
    const labels = [];
    for (let i = first; i < last; i++) {
      const a = model.rows[i];
      const y = i * ROW_H - top;
      drawRow(ctx, a, y, x, from, to, w);
      const done = a.cmds.filter((c) => c.status === 'completed').length;
      labels.push(
        `<div class="qe-tl-row" style="top:${y}px" data-asset="${esc(a.id)}" data-state="${esc(
          a.state ?? '',
        )}" data-commands="${a.cmds.length}" data-completed="${done}" title="${esc(a.id)}">${esc(
          a.id,
        )}</div>`,
      );
    }
    view.labels.innerHTML = labels.join('');
    const now = Date.now() + model.skew;
    if (now >= from && now <= to) {
      ctx.strokeStyle = '#e0301e';
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      ctx.moveTo(x(now), 0);
      ctx.lineTo(x(now), h);
      ctx.stroke();
    }
    const info = view.root.querySelector('.qe-tl-info');
    info.textContent = model.siteId
      ? `${model.siteId}: ${model.rows.length} of ${model.assets.size} assets, ${model.byId.size} commands, ${hhmm(from)} to ${hhmm(to)}`
      : info.textContent;
    const ms = performance.now() - t0;
    stats.renders++;
    stats.lastRenderMs = ms;
    stats.maxRenderMs = Math.max(stats.maxRenderMs, ms);
    view.root.dataset.rows = String(model.rows.length);
    view.root.dataset.commands = String(model.byId.size);
    view.root.dataset.seq = String(model.seq);
    view.root.dataset.renders = String(stats.renders);
    return ms;
  }

  function drawRow(ctx, a, y, x, from, to, w) {
    ctx.fillStyle = (y / ROW_H) % 2 < 1 ? 'rgba(0,0,0,0.03)' : 'rgba(0,0,0,0)';
    ctx.fillRect(LABEL_W, y, w - LABEL_W, ROW_H);
    // The state, a strip at the top.
    for (let k = 0; k < a.states.length; k++) {
      const [at, state] = a.states[k];
      const end = k + 1 < a.states.length ? a.states[k + 1][0] : to;
      if (end < from || at > to) continue;
      ctx.fillStyle = stateColor(state);
      ctx.fillRect(x(Math.max(at, from)), y + 1, x(Math.min(end, to)) - x(Math.max(at, from)), 3);
    }
    const base = y + ROW_H - 7;
    const scale = a.maxKw > 0 ? (ROW_H - 12) / a.maxKw : 0;
    const st = model.filterStatus;
    ctx.strokeStyle = '#444';
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (const c of a.cmds) {
      const end = c.until ?? c.at + 60e3;
      if (end < from || c.at > to) continue;
      const x0 = x(Math.max(c.at, from));
      const x1 = Math.max(x0 + 1, x(Math.min(end, to)));
      ctx.fillStyle = COLORS[c.status] || '#999';
      ctx.globalAlpha = st && c.status !== st ? 0.2 : 1;
      ctx.fillRect(x0, base + 2, Math.max(1, x1 - x0 - 1), 4);
      if (c.status !== 'cancelled' && /^SET_/.test(c.type)) {
        const yv = base - c.kw * scale;
        ctx.moveTo(x0, yv);
        ctx.lineTo(x1, yv);
      }
    }
    ctx.globalAlpha = 1;
    ctx.stroke();
    if (a.meas.length > 0) {
      ctx.fillStyle = '#ff7f0e';
      for (const [at, kw] of a.meas) {
        if (at < from || at > to) continue;
        ctx.fillRect(x(at) - 1, base - Math.abs(kw) * scale - 1, 2, 2);
      }
    }
  }

  const stateColors = new Map();
  function stateColor(s) {
    let c = stateColors.get(s);
    if (!c) {
      const known = {
        CHARGING: '#3aa655',
        AVAILABLE: '#9ecae1',
        IDLE: '#9ecae1',
        FAULTED: '#d9534f',
        UNAVAILABLE: '#555',
      };
      let hsh = 0;
      for (const ch of String(s)) hsh = (hsh * 31 + ch.charCodeAt(0)) | 0;
      c = known[s] || `hsl(${Math.abs(hsh) % 360},45%,60%)`;
      stateColors.set(s, c);
    }
    return c;
  }

  /** The command under the mouse, if any. */
  function hit(ev) {
    const r = view.scroll.getBoundingClientRect();
    const px = ev.clientX - r.left;
    const py = ev.clientY - r.top + view.scroll.scrollTop;
    const a = model.rows[Math.floor(py / ROW_H)];
    if (!a || px < LABEL_W) return null;
    const [from, to] = timeWindow();
    const t =
      from + ((px - LABEL_W) / Math.max(10, view.scroll.clientWidth - LABEL_W)) * (to - from);
    let found = null;
    for (const c of a.cmds) if (c.at <= t && t < (c.until ?? c.at + 60e3)) found = c;
    return found;
  }

  function showTip(ev) {
    const c = hit(ev);
    const tip = view.tip;
    if (!c) {
      tip.style.display = 'none';
      return;
    }
    const hist = c.history
      .map(
        (h) =>
          `<div>${esc(new Date(h[0]).toLocaleTimeString())} ${esc(h[1])}${h[2] ? ` (${esc(h[2])})` : ''}</div>`,
      )
      .join('');
    tip.innerHTML = `<b>${esc(c.assetId)}</b> ${esc(c.type)} ${esc(c.kw)} kW<br>${esc(c.status)}, ${esc(
      hhmm(c.at),
    )}${c.until ? `-${esc(hhmm(c.until))}` : ''}${c.error ? `<br>${esc(c.error)}` : ''}<div class="qe-tl-hist">${hist}</div>`;
    tip.dataset.command = c.id;
    const r = view.root.getBoundingClientRect();
    tip.style.display = 'block';
    tip.style.left = `${Math.max(0, Math.min(ev.clientX - r.left + 12, r.width - 230))}px`;
    tip.style.top = `${ev.clientY - r.top + 12}px`;
  }

  /** Scrolls command `id`'s row into view; where its bar is on the page, or null. */
  function locate(id) {
    const c = model.byId.get(id);
    const i = c ? model.rows.findIndex((a) => a.id === c.assetId) : -1;
    if (i < 0) return null;
    view.scroll.scrollTop = Math.max(0, i * ROW_H - ROW_H);
    renderNow();
    const [from, to] = timeWindow();
    const mid = (Math.max(c.at, from) + Math.min(c.until ?? c.at + 60e3, to)) / 2;
    const r = view.scroll.getBoundingClientRect();
    const plotW = Math.max(10, view.scroll.clientWidth - LABEL_W);
    return {
      x: r.left + LABEL_W + ((mid - from) / (to - from)) * plotW,
      y: r.top + i * ROW_H - view.scroll.scrollTop + ROW_H - 3,
    };
  }

  // ------------------------------------------------------------ talking to the runtime

  function url(extra) {
    return `qe-coordinator/${encodeURIComponent(model.coord)}/timeline${extra || ''}`;
  }

  function fetchSnapshot() {
    if (!model.coord) return;
    model.loading = true;
    const coord = model.coord;
    $.getJSON(url())
      .done((snap) => {
        if (coord !== model.coord) return;
        model.loading = false;
        load(snap);
      })
      .fail((xhr) => {
        model.loading = false;
        const info = view.root.querySelector('.qe-tl-info');
        info.textContent =
          xhr.responseJSON?.error || `no timeline (HTTP ${xhr.status}): deploy the coordinator`;
      });
  }

  function onDelta(_topic, d) {
    apply(d);
  }

  function watch(coord) {
    unwatch();
    model.coord = coord;
    model.seq = -1;
    model.assets = new Map();
    model.byId = new Map();
    model.rows = [];
    schedule();
    if (!coord) return;
    topic = `qe-coordinator/${coord}/timeline`;
    RED.comms.subscribe(topic, onDelta);
    fetchSnapshot();
    renewTimer = setInterval(() => {
      if (!view.root.offsetParent || document.hidden) {
        unwatch(); // hidden: let the lease lapse, nothing is published
        return;
      }
      $.getJSON(url('?lease=renew')).done((r) => {
        if (!r.active) fetchSnapshot();
      });
    }, RENEW_MS);
  }

  function unwatch() {
    if (topic) RED.comms.unsubscribe(topic, onDelta);
    topic = '';
    if (renewTimer) clearInterval(renewTimer);
    renewTimer = null;
  }

  function coordinators() {
    const list = [];
    RED.nodes.eachConfig((n) => {
      if (n.type === 'qe-coordinator') list.push(n);
    });
    return list;
  }

  function refreshSelect() {
    const sel = view.root.querySelector('.qe-tl-coord');
    const list = coordinators();
    sel.innerHTML = list
      .map((n) => `<option value="${esc(n.id)}">${esc(n.name || n.siteId || n.id)}</option>`)
      .join('');
    if (list.some((n) => n.id === model.coord)) sel.value = model.coord;
    return sel.value || '';
  }

  function shown() {
    const id = refreshSelect();
    if (id !== model.coord || !topic) watch(id);
    schedule();
  }

  // ------------------------------------------------------------ the tab

  function build() {
    const root = document.createElement('div');
    root.className = 'qe-tl';
    root.innerHTML = `
<style>
.qe-tl{display:flex;flex-direction:column;height:100%;font-size:12px;position:relative}
.qe-tl-bar{display:flex;gap:4px;padding:6px;flex-wrap:wrap;border-bottom:1px solid var(--red-ui-secondary-border-color,#ddd)}
.qe-tl-bar select,.qe-tl-bar input{height:26px;font-size:12px;padding:0 4px;width:auto;max-width:140px}
.qe-tl-legend{padding:2px 6px;display:flex;flex-wrap:wrap;gap:6px}
.qe-tl-legend span{display:inline-flex;align-items:center;gap:3px}
.qe-tl-legend i{display:inline-block;width:10px;height:6px}
.qe-tl-info{padding:2px 6px;color:var(--red-ui-secondary-text-color,#666)}
.qe-tl-wrap{position:relative;flex:1;min-height:120px}
.qe-tl-scroll{position:absolute;inset:0;overflow-y:auto;overflow-x:hidden}
.qe-tl-canvas,.qe-tl-labels{position:absolute;left:0;top:0;pointer-events:none}
.qe-tl-labels{width:${LABEL_W}px;height:100%;overflow:hidden}
.qe-tl-row{position:absolute;left:4px;width:${LABEL_W - 8}px;height:${ROW_H}px;line-height:${ROW_H}px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.qe-tl-tip{position:absolute;display:none;z-index:10;width:220px;padding:6px;background:var(--red-ui-secondary-background,#fff);border:1px solid #999;box-shadow:0 2px 6px rgba(0,0,0,.2);pointer-events:none}
.qe-tl-hist{margin-top:4px;font-family:monospace;font-size:11px}
</style>
<div class="qe-tl-bar">
  <select class="qe-tl-coord" title="coordinator"></select>
  <input class="qe-tl-asset" type="text" placeholder="asset" title="show assets whose id contains">
  <select class="qe-tl-status" title="show assets with a command of this status">
    <option value="">any status</option>${STATUSES.map((s) => `<option value="${s}">${s.replace('_', ' ')}</option>`).join('')}
  </select>
  <select class="qe-tl-window" title="time window">
    <option value="all">whole plan</option><option value="1h">1 h</option><option value="6h">6 h</option><option value="24h">24 h</option>
  </select>
</div>
<div class="qe-tl-legend">${STATUSES.map((s) => `<span><i style="background:${COLORS[s]}"></i>${s.replace('_', ' ')}</span>`).join('')}<span><i style="background:#444;height:1px"></i>setpoint</span><span><i style="background:#ff7f0e;width:4px;height:4px"></i>measured</span><span><i style="background:#e0301e;width:2px;height:10px"></i>now</span></div>
<div class="qe-tl-info">pick a coordinator (deployed)</div>
<div class="qe-tl-wrap"><div class="qe-tl-scroll"><div class="qe-tl-spacer"></div></div><canvas class="qe-tl-canvas"></canvas><div class="qe-tl-labels"></div></div>
<div class="qe-tl-tip"></div>`;
    view.root = root;
    view.scroll = root.querySelector('.qe-tl-scroll');
    view.spacer = root.querySelector('.qe-tl-spacer');
    view.canvas = root.querySelector('.qe-tl-canvas');
    view.labels = root.querySelector('.qe-tl-labels');
    view.tip = root.querySelector('.qe-tl-tip');
    view.scroll.addEventListener('scroll', schedule, { passive: true });
    view.scroll.addEventListener('mousemove', showTip);
    view.scroll.addEventListener('mouseleave', () => {
      view.tip.style.display = 'none';
    });
    root.querySelector('.qe-tl-coord').addEventListener('change', (e) => watch(e.target.value));
    root.querySelector('.qe-tl-asset').addEventListener('input', (e) => {
      model.filterAsset = e.target.value;
      filterRows();
      schedule();
    });
    root.querySelector('.qe-tl-status').addEventListener('change', (e) => {
      model.filterStatus = e.target.value;
      filterRows();
      schedule();
    });
    root.querySelector('.qe-tl-window').addEventListener('change', (e) => {
      model.window = e.target.value;
      schedule();
    });
    return root;
  }

  const content = build();
  RED.sidebar.addTab({
    id: 'qe-timeline',
    label: 'site',
    name: 'Site timeline',
    iconClass: 'fa fa-bar-chart',
    content,
    enableOnEdit: true,
    onchange: shown,
  });
  RED.events.on('deploy', () => {
    if (content.offsetParent) setTimeout(shown, 500);
  });
  window.addEventListener('resize', schedule);
  RED.events.on('sidebar:resize', schedule);
  // The now line moves: redraw every few seconds while watching.
  setInterval(() => {
    if (topic && content.offsetParent) schedule();
  }, 5000);

  window.QeTimeline = { load, apply, renderNow, watch, locate, stats, model };
})();
