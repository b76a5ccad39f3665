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
  /** The tab itself, once the model (qe-timeline-model.js) is there. */
  function start() {
    const RED = window.RED;
    if (!RED || !window.QeTimelineModel || window.QeTimeline) return;
    /** Row height, px: taller while few rows fit the view. */
    let ROW_H = 24;
    const LABEL_W = 96;
    const RENEW_MS = 10000;
    const M = window.QeTimelineModel;
    const { STATUSES } = M;
    const COLORS = {
      pending: '#b0b0b0',
      held: '#9b59b6',
      dispatched: '#2d7dd2',
      completed: '#3aa655',
      failed: '#d9534f',
      timed_out: '#f0ad4e',
      cancelled: '#6b6b6b',
    };
    const model = M.createModel();
    /** The coordinator watched, and the deltas that came while its snapshot was on the way. */
    const watching = { coord: '', loading: false, buffered: [] };
    const view = {
      axis: null,
      root: null,
      scroll: null,
      spacer: null,
      canvas: null,
      labels: null,
      tip: null,
    };
    const stats = { renders: 0, lastRenderMs: 0, maxRenderMs: 0, deltas: 0 };
    let topic = '';
    let renewTimer = null;
    let frame = 0;

    const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
    const hhmm = (t) => new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

    const timeWindow = () => M.timeWindow(model, Date.now());

    /** Replaces everything with a snapshot, then applies the deltas that came after it. */
    function load(snap) {
      M.load(model, snap, Date.now());
      const later = watching.buffered;
      watching.buffered = [];
      for (const d of later) M.apply(model, d, Date.now());
      M.finish(model);
      schedule();
    }

    /** Applies one delta from the runtime. */
    function apply(d) {
      if (watching.loading) {
        watching.buffered.push(d);
        return;
      }
      const r = M.apply(model, d, Date.now());
      if (r === 'resync') fetchSnapshot();
      if (r !== 'applied') return;
      stats.deltas++;
      M.finish(model);
      schedule();
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
      ROW_H = model.rows.length * 44 <= h ? 44 : 24;
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
      drawAxis(ctx, x, from, to, plotW, h);
      const labels = [];
      const b = batch();
      for (let i = first; i < last; i++) {
        const a = model.rows[i];
        const y = i * ROW_H - top;
        drawRow(b, a, y, x, from, to, w);
        const done = a.cmds.filter((c) => c.status === 'completed').length;
        const state = a.state ? esc(a.state) : '';
        const tall = ROW_H >= 40 && state;
        labels.push(
          `<div class="qe-tl-row" style="top:${y}px;height:${ROW_H}px;line-height:${tall ? 16 : ROW_H}px;padding-top:${tall ? 5 : 0}px" data-asset="${esc(a.id)}" data-state="${state}" data-commands="${a.cmds.length}" data-completed="${done}" title="${esc(a.id)} ${state}">${esc(a.id)}${tall ? `<br><small>${state}</small>` : ''}</div>`,
        );
      }
      b.draw(ctx);
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

    const STEPS = [
      60e3,
      300e3,
      600e3,
      900e3,
      1800e3,
      3600e3,
      7200e3,
      3 * 3600e3,
      6 * 3600e3,
      12 * 3600e3,
      24 * 3600e3,
    ];

    /** Time ticks: labels above the rows, light lines across them. */
    function drawAxis(ctx, x, from, to, plotW, h) {
      const step = STEPS.find((s) => (plotW * s) / (to - from) >= 70) || STEPS[STEPS.length - 1];
      const offset = new Date().getTimezoneOffset() * 60e3;
      const spans = [];
      ctx.strokeStyle = 'rgba(0,0,0,0.08)';
      ctx.lineWidth = 1;
      ctx.beginPath();
      for (let t = Math.ceil((from - offset) / step) * step + offset; t <= to; t += step) {
        const px = Math.round(x(t)) + 0.5;
        ctx.moveTo(px, 0);
        ctx.lineTo(px, h);
        spans.push(`<span style="left:${px - LABEL_W}px">${hhmm(t)}</span>`);
      }
      ctx.stroke();
      view.axis.innerHTML = spans.join('');
    }

    /** One path per fill style, filled once per frame: a few fills instead of one per bar. */
    function batch() {
      // The rows' stripes first, under everything else.
      const paths = new Map([['rgba(0,0,0,0.035)', new Path2D()]]);
      return {
        rect(style, x, y, w, h) {
          let p = paths.get(style);
          if (!p) {
            p = new Path2D();
            paths.set(style, p);
          }
          p.rect(x, y, w, h);
        },
        line: new Path2D(),
        draw(ctx) {
          for (const [style, p] of paths) {
            const [color, alpha] = style.split('|');
            ctx.globalAlpha = alpha ? Number(alpha) : 1;
            ctx.fillStyle = color;
            ctx.fill(p);
          }
          ctx.globalAlpha = 1;
          ctx.strokeStyle = '#2b4f7a';
          ctx.lineWidth = 1.5;
          ctx.stroke(this.line);
        },
      };
    }

    function drawRow(b, a, y, x, from, to, w) {
      if (Math.round((y + view.scroll.scrollTop) / ROW_H) % 2 === 0) {
        b.rect('rgba(0,0,0,0.035)', LABEL_W, y, w - LABEL_W, ROW_H);
      }
      // The state, a strip at the top (the state now all along when it has not changed).
      if (a.states.length === 0 && a.state) {
        b.rect(stateColor(a.state), LABEL_W, y + 1, w - LABEL_W, 3);
      }
      for (let k = 0; k < a.states.length; k++) {
        const [at, state] = a.states[k];
        const end = k + 1 < a.states.length ? a.states[k + 1][0] : to;
        if (end < from || at > to) continue;
        const x0 = x(Math.max(at, from));
        b.rect(stateColor(state), x0, y + 1, x(Math.min(end, to)) - x0, 3);
      }
      const base = y + ROW_H - 7;
      const scale = a.maxKw > 0 ? (ROW_H - 12) / a.maxKw : 0;
      const st = model.filterStatus;
      for (const c of a.cmds) {
        const end = M.endOf(c);
        if (end < from || c.at > to) continue;
        const x0 = x(Math.max(c.at, from));
        const x1 = Math.max(x0 + 1, x(Math.min(end, to)));
        const faded = st && c.status !== st ? '|0.2' : '';
        b.rect((COLORS[c.status] || '#999') + faded, x0, base + 2, Math.max(1, x1 - x0 - 1), 4);
        if (c.status !== 'cancelled' && /^SET_/.test(c.type)) {
          const yv = base - c.kw * scale;
          const area =
            c.type === 'SET_DISCHARGE_RATE' ? 'rgba(240,173,78,0.3)' : 'rgba(45,125,210,0.18)';
          b.rect(area, x0, yv, x1 - x0, base - yv);
          b.line.moveTo(x0, yv);
          b.line.lineTo(x1, yv);
        }
      }
      for (const [at, kw] of a.meas) {
        if (at < from || at > to) continue;
        b.rect('#ff7f0e', x(at) - 1, base - Math.abs(kw) * scale - 1, 2.5, 2.5);
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
      return M.commandAt(a, t);
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
      const mid = (Math.max(c.at, from) + Math.min(M.endOf(c), to)) / 2;
      const r = view.scroll.getBoundingClientRect();
      const plotW = Math.max(10, view.scroll.clientWidth - LABEL_W);
      return {
        x: r.left + LABEL_W + ((mid - from) / (to - from)) * plotW,
        y: r.top + i * ROW_H - view.scroll.scrollTop + ROW_H - 3,
      };
    }

    // ------------------------------------------------------------ talking to the runtime

    function url(extra) {
      return `qe-coordinator/${encodeURIComponent(watching.coord)}/timeline${extra || ''}`;
    }

    function fetchSnapshot() {
      if (!watching.coord || watching.loading) return;
      watching.loading = true;
      const coord = watching.coord;
      $.getJSON(url())
        .done((snap) => {
          if (coord !== watching.coord) return;
          watching.loading = false;
          load(snap);
        })
        .fail((xhr) => {
          watching.loading = false;
          watching.buffered = [];
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
      watching.coord = coord;
      watching.loading = false;
      watching.buffered = [];
      Object.assign(model, M.createModel(), {
        filterAsset: model.filterAsset,
        filterStatus: model.filterStatus,
        window: model.window,
      });
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
      if (list.some((n) => n.id === watching.coord)) sel.value = watching.coord;
      return sel.value || '';
    }

    function shown() {
      const id = refreshSelect();
      if (id !== watching.coord || !topic) watch(id);
      schedule();
    }

    // ------------------------------------------------------------ the tab

    function build() {
      const root = document.createElement('div');
      root.className = 'qe-tl';
      root.innerHTML = `
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
  <div class="qe-tl-axis"></div>
  <div class="qe-tl-wrap"><div class="qe-tl-scroll"><div class="qe-tl-spacer"></div></div><canvas class="qe-tl-canvas"></canvas><div class="qe-tl-labels"></div></div>
  <div class="qe-tl-tip"></div>`;
      view.root = root;
      view.scroll = root.querySelector('.qe-tl-scroll');
      view.spacer = root.querySelector('.qe-tl-spacer');
      view.canvas = root.querySelector('.qe-tl-canvas');
      view.labels = root.querySelector('.qe-tl-labels');
      view.tip = root.querySelector('.qe-tl-tip');
      view.axis = root.querySelector('.qe-tl-axis');
      view.scroll.addEventListener('scroll', schedule, { passive: true });
      view.scroll.addEventListener('mousemove', showTip);
      view.scroll.addEventListener('mouseleave', () => {
        view.tip.style.display = 'none';
      });
      root.querySelector('.qe-tl-coord').addEventListener('change', (e) => watch(e.target.value));
      root.querySelector('.qe-tl-asset').addEventListener('input', (e) => {
        model.filterAsset = e.target.value;
        M.filterRows(model);
        schedule();
      });
      root.querySelector('.qe-tl-status').addEventListener('change', (e) => {
        model.filterStatus = e.target.value;
        M.filterRows(model);
        schedule();
      });
      root.querySelector('.qe-tl-window').addEventListener('change', (e) => {
        model.window = e.target.value;
        schedule();
      });
      return root;
    }

    const link = document.createElement('link');
    link.rel = 'stylesheet';
    link.href = 'resources/@qubit-energy/node-red-coordinator/qe-timeline.css';
    document.head.appendChild(link);
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
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && content.offsetParent) shown();
    });
    RED.events.on('sidebar:resize', schedule);
    // The now line moves: redraw every few seconds while watching.
    setInterval(() => {
      if (topic && content.offsetParent) schedule();
    }, 5000);

    window.QeTimeline = { load, apply, renderNow, watch, locate, stats, model };
  }
  // Node-RED runs a module's <script src> files in the order they finish loading, not the
  // order written: when this one comes first, the model starts the tab once it has run.
  if (window.QeTimelineModel) start();
  else window.QeTimelineOnModel = start;
})();
