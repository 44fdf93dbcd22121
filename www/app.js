// Broker operator dashboard. Plain JavaScript, no dependencies, no build step.
//
// Talks only to the node that served the page (same origin). Every value that
// comes from the API is put into the DOM with textContent / attributes through
// el() below, never as HTML, so topic names, keys, values and error messages
// written by users cannot inject markup.
'use strict';

(() => {
  // ------------------------------------------------------------------ helpers

  const $ = (id) => document.getElementById(id);

  /**
   * el('td', {class: 'num', title: x}, child, ...) -> Element.
   * Children: strings/numbers become text nodes; null/undefined/false are
   * skipped; arrays are flattened. Attribute values are set with
   * setAttribute (never parsed as HTML); on* keys add event listeners.
   */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null || v === false) continue;
        if (k.startsWith('on') && typeof v === 'function') {
          node.addEventListener(k.slice(2), v);
        } else if (k === 'text') {
          node.textContent = String(v);
        } else if (v === true) {
          node.setAttribute(k, '');
        } else {
          node.setAttribute(k, String(v));
        }
      }
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const c of children) {
      if (c === undefined || c === null || c === false) continue;
      if (Array.isArray(c)) append(node, c);
      else if (c instanceof Node) node.appendChild(c);
      else node.appendChild(document.createTextNode(String(c)));
    }
  }

  /**
   * Replaces a container's children and gives focus back to the element with
   * the same data-key, so a refresh every 2 s does not steal keyboard focus.
   */
  function renderInto(container, ...nodes) {
    const active = document.activeElement;
    const key = active && container.contains(active) ? active.getAttribute('data-key') : null;
    container.replaceChildren();
    append(container, nodes);
    if (key) {
      for (const c of container.querySelectorAll('[data-key]')) {
        if (c.getAttribute('data-key') === key) { c.focus(); break; }
      }
    }
  }

  const nf = new Intl.NumberFormat('en-US');
  const fmtInt = (n) => (typeof n === 'number' && Number.isFinite(n) ? nf.format(n) : '–');

  function fmtBytes(n) {
    if (typeof n !== 'number' || !Number.isFinite(n)) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    let v = n;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (i === 0 ? String(v) : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)) + ' ' + units[i];
  }

  function fmtDuration(s) {
    if (typeof s !== 'number' || !Number.isFinite(s)) return '–';
    s = Math.floor(s);
    const d = Math.floor(s / 86400);
    const hr = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = s % 60;
    if (d) return `${d}d ${hr}h`;
    if (hr) return `${hr}h ${m}m`;
    if (m) return `${m}m ${sec}s`;
    return `${sec}s`;
  }

  const pad = (n, w = 2) => String(n).padStart(w, '0');
  function fmtTime(ms) {
    if (typeof ms !== 'number' || !Number.isFinite(ms)) return '–';
    const d = new Date(ms);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  }
  const fmtClock = (d) => `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;

  function fmtRate(v) {
    if (typeof v !== 'number' || !Number.isFinite(v)) return '–';
    if (v >= 1000) return nf.format(Math.round(v));
    if (v >= 10) return v.toFixed(0);
    if (v > 0) return v.toFixed(1);
    return '0';
  }

  // -------------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, code, message, body) {
      super(message);
      this.status = status;
      this.code = code;
      this.body = body;
    }
  }

  /**
   * One HTTP request to the serving node. Resolves with the parsed JSON body
   * (or text when asText), null for an empty body. Rejects with an ApiError
   * whose message is readable: the broker's own "error" sentence when it sent
   * one, else a description of what went wrong.
   */
  async function api(method, path, body, { timeout = 8000, asText = false } = {}) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeout);
    const init = { method, headers: { Accept: asText ? 'text/plain' : 'application/json' },
      cache: 'no-store', signal: ctl.signal };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let resp;
    let text;
    try {
      resp = await fetch(path, init);
      text = await resp.text();
    } catch (e) {
      if (e && e.name === 'AbortError') {
        throw new ApiError(0, 'timeout', `no answer from the broker within ${timeout / 1000} s`);
      }
      throw new ApiError(0, 'network', 'cannot reach the broker (connection failed)');
    } finally {
      clearTimeout(timer);
    }
    let data = null;
    if (text !== '') {
      if (asText && resp.ok) {
        data = text;
      } else {
        try { data = JSON.parse(text); } catch { data = text; }
      }
    }
    if (!resp.ok) {
      let msg = `HTTP ${resp.status} ${resp.statusText || ''}`.trim();
      let code = 'http_' + resp.status;
      if (data && typeof data === 'object' && typeof data.error === 'string') {
        msg = data.error;
        if (typeof data.code === 'string') code = data.code;
      } else if (typeof data === 'string' && data.trim() !== '' && data.length < 300) {
        msg += ': ' + data.trim();
      }
      const err = new ApiError(resp.status, code, msg, data);
      err.retryAfter = resp.headers.get('Retry-After');
      throw err;
    }
    return data;
  }

  const enc = encodeURIComponent;

  /** "Could not load topics: unknown topic 'x' (unknown_topic, HTTP 404)". */
  function describe(what, e) {
    if (!(e instanceof ApiError)) return `${what}: ${e && e.message ? e.message : String(e)}`;
    const bits = [];
    if (e.code && !/^http_/.test(e.code) && e.code !== 'network' && e.code !== 'timeout') bits.push(e.code);
    if (e.status) bits.push(`HTTP ${e.status}`);
    let s = `${what}: ${e.message}`;
    if (bits.length) s += ` (${bits.join(', ')})`;
    if (e.code === 'no_leader') s += '. The cluster has no leader right now; try again in a moment.';
    return s;
  }

  function showError(box, msg) {
    if (!msg) { box.hidden = true; box.textContent = ''; return; }
    box.textContent = msg;
    box.hidden = false;
  }

  function toast(msg, kind = 'info') {
    const close = el('button', { type: 'button', class: 'toast-close', 'aria-label': 'Dismiss' }, '×');
    const t = el('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status' },
      el('span', null, msg), close);
    const remove = () => t.remove();
    close.addEventListener('click', remove);
    $('toasts').appendChild(t);
    setTimeout(remove, kind === 'error' ? 10000 : 5000);
  }

  /**
   * Runs fn now and then every intervalMs after the previous run finished
   * (never two at once, so a slow node does not pile requests up).
   */
  function poller(fn, intervalMs) {
    let timer = null;
    let running = false;
    let again = false;
    async function tick() {
      clearTimeout(timer);
      if (running) { again = true; return; }
      running = true;
      try { await fn(); } catch (e) { console.error(e); }
      running = false;
      if (again) { again = false; tick(); return; }
      timer = setTimeout(tick, intervalMs);
    }
    return { start: tick, now: tick };
  }

  // ------------------------------------------------------------ app state

  const state = {
    view: 'cluster',
    overview: null,          // last /cluster/overview (or synthesized from /cluster/status)
    selfId: null,            // node that serves this page
    mode: null,              // "cluster" | "standalone"
    leaderId: null,
    transferring: null,      // node id a leadership transfer is running for
    topics: [],              // [{name, partitions}] from GET /topics
    topicDetails: new Map(), // name -> GET /topics/{t}
    connected: null,
  };

  function setConnected(ok, detail) {
    const c = $('conn');
    c.classList.toggle('ok', ok);
    c.classList.toggle('bad', !ok);
    $('conn-text').textContent = ok ? `live · ${fmtClock(new Date())}` : 'connection problem';
    c.title = ok ? 'Last successful refresh' : (detail || '');
    state.connected = ok;
  }

  // ---------------------------------------------------------------- tabs

  const VIEWS = ['cluster', 'topics', 'messages', 'rates', 'groups'];
  const tabs = () => Array.from(document.querySelectorAll('[role="tab"]'));

  function setView(view, { focus = false, updateHash = true } = {}) {
    if (!VIEWS.includes(view)) view = 'cluster';
    state.view = view;
    for (const t of tabs()) {
      const on = t.dataset.view === view;
      t.setAttribute('aria-selected', on ? 'true' : 'false');
      t.tabIndex = on ? 0 : -1;
      if (on && focus) t.focus();
    }
    for (const v of VIEWS) $(`view-${v}`).hidden = v !== view;
    if (updateHash && location.hash.replace(/^#/, '').split('?')[0] !== view) {
      history.replaceState(null, '', '#' + view);
    }
    if (view === 'topics') topicsPoller.now();
    if (view === 'groups') groupsPoller.now();
    if (view === 'rates') drawCharts();
    if (view === 'messages') messagesEnter();
  }

  function initTabs() {
    const list = tabs();
    for (const t of list) {
      t.addEventListener('click', () => setView(t.dataset.view));
      t.addEventListener('keydown', (ev) => {
        const i = list.indexOf(t);
        let j = null;
        if (ev.key === 'ArrowRight') j = (i + 1) % list.length;
        else if (ev.key === 'ArrowLeft') j = (i - 1 + list.length) % list.length;
        else if (ev.key === 'Home') j = 0;
        else if (ev.key === 'End') j = list.length - 1;
        if (j !== null) { ev.preventDefault(); setView(list[j].dataset.view, { focus: true }); }
      });
    }
    window.addEventListener('hashchange', () => applyHash());
  }

  function applyHash() {
    const raw = location.hash.replace(/^#/, '');
    const [view, query] = raw.split('?');
    if (view === 'messages' && query) {
      const q = new URLSearchParams(query);
      mb.pending = {
        topic: q.get('topic') || '',
        partition: Number(q.get('partition') || 0),
        offset: q.get('offset'),
      };
    }
    setView(view || 'cluster', { updateHash: false });
  }

  // -------------------------------------------------------------- cluster

  async function refreshCluster() {
    let ov;
    try {
      ov = await api('GET', '/cluster/overview');
    } catch (e) {
      // Older brokers have no /cluster/overview: fall back to this node's status.
      if (e instanceof ApiError && e.status === 404 && e.code !== 'no_leader') {
        try {
          const st = await api('GET', '/cluster/status');
          ov = { node_id: st.node_id, leader: st.leader, members: st.members || [],
            nodes: [Object.assign({ reachable: true }, st)] };
        } catch (e2) {
          clusterFailed(e2);
          return;
        }
      } else {
        clusterFailed(e);
        return;
      }
    }
    showError($('cluster-error'), '');
    setConnected(true);
    state.overview = ov;
    state.selfId = ov.node_id;
    const nodes = Array.isArray(ov.nodes) ? ov.nodes : [];
    const self = nodes.find((n) => n.node_id === ov.node_id && n.reachable !== false);
    const anyUp = self || nodes.find((n) => n.reachable !== false && n.mode);
    state.mode = anyUp && anyUp.mode ? anyUp.mode : ((ov.members || []).length > 1 ? 'cluster' : 'standalone');
    state.leaderId = ov.leader && typeof ov.leader.node_id === 'number' ? ov.leader.node_id : null;
    renderHeader(ov, self);
    renderCluster(ov);
    $('cluster-updated').textContent = `Updated ${fmtClock(new Date())} · every 2 s`;
  }

  function clusterFailed(e) {
    const msg = describe('Could not load the cluster overview', e);
    showError($('cluster-error'), msg + (state.overview ? ' — showing the last answer.' : ''));
    setConnected(false, msg);
    $('members-table').classList.add('stale');
  }

  function renderHeader(ov, self) {
    const parts = [`Node ${ov.node_id}`];
    if (state.mode === 'standalone') {
      parts.push('standalone');
    } else {
      if (self && self.state) parts.push(self.state);
      parts.push(`cluster of ${(ov.members || []).length}`);
      parts.push(state.leaderId !== null ? `leader: node ${state.leaderId}` : 'no leader');
    }
    $('served').textContent = parts.join(' · ');
    document.title = `Broker · node ${ov.node_id}`;
  }

  function badge(text, cls, title) {
    return el('span', { class: `badge ${cls || ''}`.trim(), title }, text);
  }

  function httpLink(addr) {
    if (typeof addr !== 'string' || addr === '') return '–';
    // Only a host:port goes into the href; anything else is shown as text.
    if (!/^[A-Za-z0-9.\-[\]:]+$/.test(addr)) return addr;
    return el('a', { href: `http://${addr}/`, title: 'Open this node\'s dashboard' }, addr);
  }

  function renderCluster(ov) {
    $('members-table').classList.remove('stale');
    const members = Array.isArray(ov.members) ? ov.members : [];
    const nodes = Array.isArray(ov.nodes) ? ov.nodes : [];
    const byId = new Map();
    for (const m of members) byId.set(m.node_id, { member: m, status: null });
    for (const n of nodes) {
      const e = byId.get(n.node_id) || { member: null, status: null };
      e.status = n;
      byId.set(n.node_id, e);
    }
    const ids = Array.from(byId.keys()).sort((a, b) => a - b);
    const up = ids.filter((id) => byId.get(id).status && byId.get(id).status.reachable !== false);
    const terms = up.map((id) => byId.get(id).status.term).filter((t) => typeof t === 'number');
    const self = byId.get(ov.node_id);
    const cluster = state.mode === 'cluster';

    renderInto($('cluster-cards'),
      card('Leader', state.leaderId !== null ? `node ${state.leaderId}` : 'none',
        state.leaderId === null ? 'bad' : 'good'),
      card('Members up', `${up.length} / ${ids.length}`, up.length === ids.length ? 'good' : 'warn'),
      card('Term', terms.length ? fmtInt(Math.max(...terms)) : '–'),
      card('Mode', state.mode || '–'),
      card('Topics', self && self.status ? fmtInt(self.status.topics) : '–'));

    const rows = ids.map((id) => {
      const { member, status } = byId.get(id);
      const reachable = !!status && status.reachable !== false;
      const isLeader = id === state.leaderId;
      const role = member ? member.role : 'unknown';
      // A member's HTTP address can be empty right after start-up; this node's is the page's own.
      const addr = (member && member.http_address) || (status && status.http_address) ||
        (id === ov.node_id ? location.host : '');
      const nodeCell = el('th', { scope: 'row' },
        el('span', { class: 'node-name' }, `Node ${id}`),
        isLeader ? badge('★ leader', 'leader', 'Current Raft leader') : null,
        id === ov.node_id ? badge('this page', 'self', 'The node that served this page') : null);
      const st = reachable ? status.state : null;
      const applied = reachable ? status.applied_index : undefined;
      const commit = reachable ? status.commit_index : undefined;
      const behind = typeof applied === 'number' && typeof commit === 'number' && applied < commit
        ? el('span', { class: 'behind', title: 'entries committed but not yet applied' }, ` (−${fmtInt(commit - applied)})`)
        : null;
      let action = null;
      if (cluster && reachable && role === 'voter' && st === 'follower' && state.leaderId !== null) {
        const busy = state.transferring !== null;
        action = el('button', {
          type: 'button', class: 'small', 'data-key': `transfer-${id}`, 'data-transfer': id,
          disabled: busy, onclick: () => transferLeadership(id),
          'aria-label': `Transfer leadership to node ${id}`,
        }, state.transferring === id ? 'Transferring…' : 'Transfer leadership here');
      }
      return el('tr', { class: [isLeader ? 'is-leader' : '', reachable ? '' : 'is-down'].join(' ').trim() || null,
        'data-node-id': id, 'data-state': st || 'unreachable' },
        nodeCell,
        el('td', null, role),
        el('td', null, st ? badge(st, `state-${st}`) : el('span', { class: 'muted' }, '–')),
        el('td', { class: 'num' }, reachable ? fmtInt(status.term) : '–'),
        el('td', { class: 'num' }, reachable ? fmtInt(commit) : '–'),
        el('td', { class: 'num' }, reachable ? fmtInt(applied) : '–', behind),
        el('td', { class: 'num' }, reachable ? fmtInt(status.last_log_index) : '–'),
        el('td', { class: 'num' }, reachable ? fmtDuration(status.uptime_s) : '–'),
        el('td', { class: 'mono' }, httpLink(addr)),
        el('td', null, reachable
          ? badge('up', 'up')
          : badge('unreachable', 'down', status && status.error ? String(status.error) : 'no answer from this node')),
        el('td', { class: 'actions' }, action));
    });
    if (!rows.length) {
      rows.push(el('tr', null, el('td', { colspan: 11, class: 'empty' }, 'No members reported.')));
    }
    renderInto($('members-body'), rows);
  }

  function card(label, value, cls) {
    return el('div', { class: `card ${cls || ''}`.trim() },
      el('span', { class: 'card-label' }, label),
      el('span', { class: 'card-value' }, value));
  }

  async function transferLeadership(id) {
    if (state.transferring !== null) return;
    if (!window.confirm(`Transfer Raft leadership to node ${id}? Writes pause briefly while the leader changes.`)) return;
    state.transferring = id;
    if (state.overview) renderCluster(state.overview);
    try {
      await api('POST', '/cluster/leader/transfer', { node_id: id }, { timeout: 20000 });
      toast(`Leadership transferred to node ${id}.`, 'success');
    } catch (e) {
      toast(describe(`Leadership transfer to node ${id} failed`, e), 'error');
    } finally {
      state.transferring = null;
      clusterPoller.now();
    }
  }

  // --------------------------------------------------------------- topics

  /** Runs fn over items with at most `limit` requests in flight. */
  async function mapLimit(items, limit, fn) {
    const out = new Array(items.length);
    let next = 0;
    async function worker() {
      while (next < items.length) {
        const i = next++;
        try { out[i] = { ok: true, value: await fn(items[i]) }; } catch (e) { out[i] = { ok: false, error: e }; }
      }
    }
    await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
    return out;
  }

  async function loadTopicList() {
    const r = await api('GET', '/topics');
    state.topics = Array.isArray(r && r.topics) ? r.topics.slice() : [];
    state.topics.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return state.topics;
  }

  async function loadTopicDetails(names) {
    const res = await mapLimit(names, 4, (n) => api('GET', `/topics/${enc(n)}`));
    const out = new Map();
    res.forEach((r, i) => {
      if (r.ok) { out.set(names[i], r.value); state.topicDetails.set(names[i], r.value); }
      else out.set(names[i], { error: r.error });
    });
    return out;
  }

  async function refreshTopics() {
    if (state.view !== 'topics') return;
    let list;
    try {
      list = await loadTopicList();
    } catch (e) {
      showError($('topics-error'), describe('Could not load topics', e));
      $('topics-list').classList.add('stale');
      return;
    }
    const details = await loadTopicDetails(list.map((t) => t.name));
    showError($('topics-error'), '');
    $('topics-list').classList.remove('stale');
    renderTopics(list, details);
    $('topics-updated').textContent = `Updated ${fmtClock(new Date())} · every 2 s`;
  }

  function renderTopics(list, details) {
    const filter = $('topic-filter').value.trim().toLowerCase();
    const shown = filter ? list.filter((t) => t.name.toLowerCase().includes(filter)) : list;
    $('topics-count').textContent = filter
      ? `${shown.length} of ${list.length} topics`
      : `${list.length} topic${list.length === 1 ? '' : 's'}`;
    if (!list.length) {
      renderInto($('topics-list'), el('p', { class: 'empty panel' },
        'No topics yet. Create one above, or produce to a name and it is created automatically (when auto_create_topics is on).'));
      return;
    }
    renderInto($('topics-list'), shown.map((t) => topicCard(t, details.get(t.name))));
  }

  function topicCard(t, d) {
    const parts = d && Array.isArray(d.partitions) ? d.partitions : [];
    let msgs = 0;
    let size = 0;
    for (const p of parts) {
      if (typeof p.high_watermark === 'number' && typeof p.log_start_offset === 'number') msgs += p.high_watermark - p.log_start_offset;
      if (typeof p.size_bytes === 'number') size += p.size_bytes;
    }
    const meta = [`${fmtInt(t.partitions)} partition${t.partitions === 1 ? '' : 's'}`];
    if (d && !d.error) {
      meta.push(`${fmtInt(msgs)} message${msgs === 1 ? '' : 's'} retained`, fmtBytes(size));
      if (d.retention_time) meta.push(`retention ${d.retention_time}`);
    }
    let body;
    if (d && d.error) {
      body = el('p', { class: 'error-inline' }, describe('Could not load partitions', d.error));
    } else {
      body = el('div', { class: 'table-wrap' }, el('table', { class: 'data compact' },
        el('caption', { class: 'sr-only' }, `Partitions of topic ${t.name}`),
        el('thead', null, el('tr', null,
          el('th', { scope: 'col' }, 'Partition'),
          el('th', { scope: 'col', class: 'num' }, 'Log start'),
          el('th', { scope: 'col', class: 'num' }, 'High watermark'),
          el('th', { scope: 'col', class: 'num' }, 'Messages'),
          el('th', { scope: 'col', class: 'num' }, 'Size'),
          el('th', { scope: 'col', class: 'num' }, 'Segments'),
          el('th', { scope: 'col' }, el('span', { class: 'sr-only' }, 'Browse')))),
        el('tbody', null, parts.map((p) => el('tr', { 'data-partition': p.partition },
          el('th', { scope: 'row' }, String(p.partition)),
          el('td', { class: 'num', 'data-field': 'log_start_offset' }, fmtInt(p.log_start_offset)),
          el('td', { class: 'num', 'data-field': 'high_watermark' }, fmtInt(p.high_watermark)),
          el('td', { class: 'num' }, fmtInt(p.high_watermark - p.log_start_offset)),
          el('td', { class: 'num', 'data-field': 'size_bytes', title: `${fmtInt(p.size_bytes)} bytes` }, fmtBytes(p.size_bytes)),
          el('td', { class: 'num', 'data-field': 'segments' }, fmtInt(p.segments)),
          el('td', { class: 'actions' }, el('a', {
            href: `#messages?topic=${enc(t.name)}&partition=${enc(p.partition)}&offset=${enc(p.log_start_offset)}`,
            'data-key': `browse-${t.name}-${p.partition}`,
            'aria-label': `Browse messages of ${t.name} partition ${p.partition}`,
          }, 'Browse')))))));
    }
    return el('article', { class: 'topic panel', 'data-topic': t.name },
      el('header', { class: 'topic-head' },
        el('h3', { class: 'topic-name' }, t.name),
        el('p', { class: 'topic-meta' }, meta.join(' · ')),
        el('button', { type: 'button', class: 'danger small', 'data-key': `delete-${t.name}`,
          'aria-label': `Delete topic ${t.name}`, onclick: () => deleteTopic(t.name) }, 'Delete')),
      body);
  }

  const TOPIC_RE = /^[A-Za-z0-9._-]{1,249}$/;

  async function createTopic(ev) {
    ev.preventDefault();
    const out = $('ct-result');
    const name = $('ct-name').value.trim();
    const partitions = Number($('ct-partitions').value);
    const retention = $('ct-retention').value.trim();
    out.className = 'form-result full';
    if (!TOPIC_RE.test(name) || name === '.' || name === '..') {
      out.textContent = 'Topic name: 1–249 letters, digits, dots, underscores or dashes (not "." or "..").';
      out.classList.add('bad');
      $('ct-name').setAttribute('aria-invalid', 'true');
      $('ct-name').focus();
      return;
    }
    $('ct-name').removeAttribute('aria-invalid');
    if (!Number.isInteger(partitions) || partitions < 1) {
      out.textContent = 'Partitions must be a whole number of at least 1.';
      out.classList.add('bad');
      $('ct-partitions').setAttribute('aria-invalid', 'true');
      $('ct-partitions').focus();
      return;
    }
    $('ct-partitions').removeAttribute('aria-invalid');
    const body = { name, partitions };
    if (retention) body.retention_time = retention;
    const btn = $('ct-submit');
    btn.disabled = true;
    out.textContent = `Creating ${name}…`;
    try {
      const r = await api('POST', '/topics', body);
      out.textContent = `Created topic ${r && r.name ? r.name : name} with ${r && r.partitions ? r.partitions : partitions} partition(s).`;
      out.classList.add('good');
      $('ct-name').value = '';
      $('ct-retention').value = '';
    } catch (e) {
      out.textContent = describe(`Could not create topic ${name}`, e);
      out.classList.add('bad');
    } finally {
      btn.disabled = false;
      topicsPoller.now();
    }
  }

  async function deleteTopic(name) {
    if (!window.confirm(`Delete topic "${name}" and all its messages on every node? This cannot be undone.`)) return;
    try {
      await api('DELETE', `/topics/${enc(name)}`);
      toast(`Deleted topic ${name}.`, 'success');
      state.topicDetails.delete(name);
    } catch (e) {
      toast(describe(`Could not delete topic ${name}`, e), 'error');
    } finally {
      topicsPoller.now();
    }
  }

  // ------------------------------------------------------------- messages

  const mb = {
    pending: null,   // selection requested by a link (#messages?topic=..)
    last: null,      // last fetch answer: {offset, next_offset, high_watermark, log_start_offset, count}
    loading: false,
    seq: 0,          // number of the newest fetch request
  };

  async function messagesEnter() {
    try {
      await loadTopicList();
    } catch (e) {
      showError($('messages-error'), describe('Could not load the topic list', e));
      return;
    }
    fillTopicSelect();
    if (mb.pending) {
      const p = mb.pending;
      mb.pending = null;
      if (state.topics.some((t) => t.name === p.topic)) {
        $('mb-topic').value = p.topic;
        fillPartitionSelect();
        $('mb-partition').value = String(p.partition);
        if (p.offset !== null && /^\d+$/.test(p.offset)) $('mb-offset').value = p.offset;
        loadMessages(p.offset === 'latest' ? 'latest' : Number($('mb-offset').value));
      } else if (p.topic) {
        showError($('messages-error'), `Topic ${p.topic} does not exist (any more).`);
      }
    } else if (!mb.last && $('mb-topic').value && $('mb-partition').value !== '') {
      loadMessages('earliest'); // first visit: show the start of the first partition
    }
  }

  function fillTopicSelect() {
    const sel = $('mb-topic');
    const cur = sel.value;
    sel.replaceChildren();
    if (!state.topics.length) sel.appendChild(el('option', { value: '' }, '(no topics)'));
    for (const t of state.topics) sel.appendChild(el('option', { value: t.name }, t.name));
    if (state.topics.some((t) => t.name === cur)) sel.value = cur;
    fillPartitionSelect();
  }

  function fillPartitionSelect() {
    const sel = $('mb-partition');
    const cur = sel.value;
    const t = state.topics.find((x) => x.name === $('mb-topic').value);
    sel.replaceChildren();
    const n = t ? t.partitions : 0;
    for (let i = 0; i < n; i++) sel.appendChild(el('option', { value: String(i) }, String(i)));
    if (cur !== '' && Number(cur) < n) sel.value = cur;
  }

  function limit() { return Number($('mb-limit').value) || 20; }

  /** offset: a number, 'earliest' or 'latest' (= the last page). */
  async function loadMessages(offset) {
    const topic = $('mb-topic').value;
    const partition = $('mb-partition').value;
    const box = $('messages-error');
    if (!topic || partition === '') {
      showError(box, 'Pick a topic and a partition first.');
      return;
    }
    const lim = limit();
    const base = `/topics/${enc(topic)}/partitions/${enc(partition)}/messages`;
    const seq = ++mb.seq; // only the newest request may update the page
    const typed = $('mb-offset').value;
    mb.loading = true;
    updatePager();
    try {
      let off = offset;
      if (off === 'latest') {
        // Learn the high watermark first, then show the last page.
        const probe = await api('GET', `${base}?offset=latest&limit=1`);
        if (seq !== mb.seq) return;
        off = Math.max(probe.log_start_offset || 0, (probe.high_watermark || 0) - lim);
      }
      if (typeof off === 'number' && (!Number.isInteger(off) || off < 0)) {
        showError(box, 'Offset must be a whole number ≥ 0.');
        return;
      }
      const r = await api('GET', `${base}?offset=${enc(off)}&limit=${lim}`);
      if (seq !== mb.seq) return;
      const msgs = Array.isArray(r.messages) ? r.messages : [];
      const first = msgs.length ? msgs[0].offset : (typeof off === 'number' ? off : r.next_offset);
      // Do not overwrite an offset the user typed while this request ran.
      if ($('mb-offset').value === typed) $('mb-offset').value = String(first);
      mb.last = { topic, partition, offset: first, next_offset: r.next_offset, high_watermark: r.high_watermark,
        log_start_offset: r.log_start_offset, count: msgs.length };
      showError(box, '');
      renderMessages(r, msgs);
      history.replaceState(null, '', `#messages?topic=${enc(topic)}&partition=${enc(partition)}&offset=${enc(first)}`);
    } catch (e) {
      if (seq !== mb.seq) return;
      if (e instanceof ApiError && e.code === 'offset_out_of_range' && e.body) {
        const lso = e.body.log_start_offset;
        const hw = e.body.high_watermark;
        mb.last = { topic, partition, offset: null, next_offset: null, high_watermark: hw, log_start_offset: lso, count: 0 };
        showError(box, `Offset ${offset} is outside this partition's range: messages exist from ${fmtInt(lso)} ` +
          `up to ${fmtInt(hw - 1)} (high watermark ${fmtInt(hw)}). Use Earliest or Latest.`);
      } else {
        showError(box, describe('Could not load messages', e));
      }
      renderInto($('messages-list'));
      $('mb-range').textContent = '';
    } finally {
      if (seq === mb.seq) {
        mb.loading = false;
        updatePager();
      }
    }
  }

  function updatePager() {
    const l = mb.last;
    const busy = mb.loading;
    const have = l && l.offset !== null;
    $('mb-prev').disabled = busy || !have || l.offset <= l.log_start_offset;
    $('mb-next').disabled = busy || !have || l.next_offset >= l.high_watermark;
    $('mb-first').disabled = busy;
    $('mb-last').disabled = busy;
    $('mb-load').disabled = busy;
  }

  function renderMessages(r, msgs) {
    const lso = r.log_start_offset;
    const hw = r.high_watermark;
    const range = `Topic ${r.topic}, partition ${r.partition}: offsets ${fmtInt(lso)} to ${fmtInt(hw - 1)} retained (high watermark ${fmtInt(hw)}).`;
    $('mb-range').textContent = msgs.length
      ? `${range} Showing ${fmtInt(msgs[0].offset)}–${fmtInt(msgs[msgs.length - 1].offset)}.`
      : `${range} No messages at or after offset ${fmtInt(Number($('mb-offset').value))} yet.`;
    renderInto($('messages-list'), msgs.map(messageItem));
  }

  function b64ToBytes(s) {
    try {
      const bin = atob(s);
      const out = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
      return out;
    } catch {
      return null;
    }
  }

  function hexPreview(bytes, max = 48) {
    const shown = Array.from(bytes.slice(0, max), (b) => b.toString(16).padStart(2, '0'));
    const lines = [];
    for (let i = 0; i < shown.length; i += 16) lines.push(shown.slice(i, i + 16).join(' '));
    return lines.join('\n') + (bytes.length > max ? `\n… ${fmtInt(bytes.length - max)} more bytes` : '');
  }

  function valueBlock(m) {
    const v = m.value;
    if (m.value_encoding === 'base64' && typeof v === 'string') {
      const bytes = b64ToBytes(v);
      return [
        el('p', { class: 'value-kind' }, badge('binary', 'kind-bin'),
          ` base64-encoded by the broker (not valid UTF-8)${bytes ? `, ${fmtInt(bytes.length)} bytes` : ''}`),
        el('pre', { class: 'value', 'data-encoding': 'base64', 'aria-label': 'Value, base64' }, v),
        bytes ? el('details', null, el('summary', null, 'Hex'), el('pre', { class: 'value hex' }, hexPreview(bytes))) : null,
      ];
    }
    if (typeof v === 'string') {
      let parsed;
      let isJsonText = false;
      if (/^\s*[[{]/.test(v)) {
        try { parsed = JSON.parse(v); isJsonText = true; } catch { /* plain text */ }
      }
      if (isJsonText) {
        return [el('p', { class: 'value-kind' }, badge('text', 'kind-text'), ' string holding JSON text, shown formatted'),
          el('pre', { class: 'value json' }, JSON.stringify(parsed, null, 2))];
      }
      return [el('p', { class: 'value-kind' }, badge('text', 'kind-text'), ` string, ${fmtInt(v.length)} characters`),
        el('pre', { class: 'value' }, v)];
    }
    const kind = v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
    return [el('p', { class: 'value-kind' }, badge('JSON', 'kind-json'), ` ${kind}`),
      el('pre', { class: 'value json' }, JSON.stringify(v, null, 2))];
  }

  function messageItem(m) {
    const headers = m.headers && typeof m.headers === 'object' ? Object.entries(m.headers) : [];
    const key = m.key === null || m.key === undefined
      ? el('span', { class: 'muted' }, 'no key')
      : [el('span', { class: 'label' }, 'key '),
        el('code', { class: 'key' }, typeof m.key === 'string' ? m.key : JSON.stringify(m.key))];
    return el('li', { class: 'msg panel', 'data-offset': m.offset },
      el('div', { class: 'msg-meta' },
        el('div', { class: 'msg-head' },
          el('span', { class: 'offset', title: 'Offset' }, `#${m.offset}`),
          el('time', { datetime: Number.isFinite(m.timestamp) ? new Date(m.timestamp).toISOString() : null }, fmtTime(m.timestamp))),
        el('div', { class: 'msg-key' }, key),
        headers.length
          ? el('dl', { class: 'headers', 'aria-label': 'Headers' }, headers.map(([k, v]) => el('div', { class: 'hdr' },
            el('dt', null, k), el('dd', null, typeof v === 'string' ? v : JSON.stringify(v)))))
          : el('p', { class: 'muted no-headers' }, 'no headers')),
      el('div', { class: 'msg-body' }, valueBlock(m)));
  }

  function initMessages() {
    $('mb-topic').addEventListener('change', () => { fillPartitionSelect(); $('mb-offset').value = '0'; loadMessages('earliest'); });
    $('mb-partition').addEventListener('change', () => loadMessages('earliest'));
    $('mb-limit').addEventListener('change', () => { if (mb.last && mb.last.offset !== null) loadMessages(mb.last.offset); });
    $('browse').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const raw = $('mb-offset').value.trim();
      loadMessages(raw === '' ? 'earliest' : Number(raw));
    });
    $('mb-first').addEventListener('click', () => loadMessages('earliest'));
    $('mb-last').addEventListener('click', () => loadMessages('latest'));
    $('mb-prev').addEventListener('click', () => {
      const l = mb.last;
      if (l && l.offset !== null) loadMessages(Math.max(l.log_start_offset || 0, l.offset - limit()));
    });
    $('mb-next').addEventListener('click', () => {
      const l = mb.last;
      if (l && l.next_offset !== null) loadMessages(l.next_offset);
    });
    updatePager();
  }

  // ---------------------------------------------------------------- rates

  const WINDOW_MS = 120000;
  const SAMPLE_MS = 2000;
  const samples = []; // {t, m: Map name -> value, lat: [{le, count}]}

  /** Prometheus text format: Map of "name" or "name{labels}" -> number. */
  function parseMetrics(text) {
    const out = new Map();
    for (const line of text.split('\n')) {
      if (!line || line[0] === '#') continue;
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)/.exec(line);
      if (!m) continue;
      const v = m[2] === '+Inf' ? Infinity : m[2] === '-Inf' ? -Infinity : Number(m[2]);
      if (!Number.isNaN(v)) out.set(m[1], v);
    }
    return out;
  }

  function histogram(m, name) {
    const buckets = [];
    for (const [k, v] of m) {
      const r = new RegExp(`^${name}_bucket\\{.*le="([^"]+)".*\\}$`).exec(k);
      if (r) buckets.push({ le: r[1] === '+Inf' ? Infinity : Number(r[1]), count: v });
    }
    return buckets.sort((a, b) => a.le - b.le);
  }

  /** histogram_quantile over the difference of two cumulative histograms. */
  function quantile(q, newer, older) {
    const b = newer.map((x, i) => ({ le: x.le, count: x.count - (older && older[i] ? older[i].count : 0) }));
    if (!b.length) return null;
    const total = b[b.length - 1].count;
    if (!(total > 0)) return null;
    const rank = q * total;
    let prevLe = 0;
    let prevCount = 0;
    for (const x of b) {
      if (x.count >= rank) {
        if (x.le === Infinity) return prevLe;
        const inBucket = x.count - prevCount;
        return prevLe + (x.le - prevLe) * (inBucket > 0 ? (rank - prevCount) / inBucket : 0);
      }
      prevLe = x.le;
      prevCount = x.count;
    }
    return prevLe;
  }

  function fmtSeconds(s) {
    if (s === null || !Number.isFinite(s)) return '–';
    if (s < 0.001) return `${(s * 1e6).toFixed(0)} µs`;
    if (s < 1) return `${(s * 1000).toFixed(s < 0.01 ? 2 : 1)} ms`;
    return `${s.toFixed(2)} s`;
  }

  async function sampleMetrics() {
    let text;
    try {
      text = await api('GET', '/metrics', undefined, { asText: true });
    } catch (e) {
      showError($('rates-error'), describe('Could not read /metrics', e));
      samples.push({ t: Date.now(), m: null });
      trimSamples();
      drawCharts();
      return;
    }
    showError($('rates-error'), '');
    const m = parseMetrics(typeof text === 'string' ? text : '');
    const cluster = state.mode === 'cluster' ? await clusterCounters() : null;
    samples.push({ t: Date.now(), m, cluster, lat: histogram(m, 'broker_produce_latency_seconds') });
    trimSamples();
    $('rates-updated').textContent = `Sampled ${fmtClock(new Date())} · every 2 s · last 2 minutes`;
    renderMetricsTable(m);
    drawCharts();
  }

  function trimSamples() {
    const cutoff = Date.now() - WINDOW_MS - 2 * SAMPLE_MS;
    while (samples.length && samples[0].t < cutoff) samples.shift();
  }

  /**
   * Cluster mode: the two message counters summed over every member, from
   * /cluster/overview (this node fetches the others' status). Null when a
   * member is unreachable, so the chart shows a gap rather than a dip.
   */
  async function clusterCounters() {
    let ov;
    try {
      ov = await api('GET', '/cluster/overview');
    } catch (e) {
      return null;
    }
    const nodes = ov && Array.isArray(ov.nodes) ? ov.nodes : [];
    const sum = new Map();
    for (const n of nodes) {
      if (!n.reachable) return null;
      for (const [key, metric] of [['produced_messages_total', 'broker_produced_messages_total'],
                                   ['fetched_messages_total', 'broker_fetched_messages_total']]) {
        if (typeof n[key] !== 'number') return null;
        sum.set(metric, (sum.get(metric) || 0) + n[key]);
      }
    }
    return sum.size ? sum : null;
  }

  /** The counter a chart uses: the cluster sum when there is one. */
  function counterOf(sample, name) {
    const src = sample.cluster || sample.m;
    return src && src.has(name) ? src.get(name) : undefined;
  }

  /** [{t, v}] messages/s between consecutive samples; v null across gaps/resets. */
  function rateSeries(name) {
    const out = [];
    for (let i = 1; i < samples.length; i++) {
      const a = samples[i - 1];
      const b = samples[i];
      let v = null;
      const va = counterOf(a, name);
      const vb = counterOf(b, name);
      if (va !== undefined && vb !== undefined && (!a.cluster) === (!b.cluster)) {
        const d = vb - va;
        const dt = (b.t - a.t) / 1000;
        if (d >= 0 && dt > 0) v = d / dt; // a drop means the node restarted: leave a gap
      }
      out.push({ t: b.t, v });
    }
    return out;
  }

  const CHARTS = [
    { metric: 'broker_produced_messages_total', canvas: 'chart-produce', now: 'produce-now', stats: 'produce-stats', color: '--produce' },
    { metric: 'broker_fetched_messages_total', canvas: 'chart-fetch', now: 'fetch-now', stats: 'fetch-stats', color: '--fetch' },
  ];

  function drawCharts() {
    renderRatesNote();
    for (const c of CHARTS) {
      const series = rateSeries(c.metric);
      const vals = series.map((p) => p.v).filter((v) => v !== null);
      const cur = series.length ? series[series.length - 1].v : null;
      $(c.now).textContent = cur === null ? '–' : `${fmtRate(cur)}/s`;
      const last = samples.length ? samples[samples.length - 1] : null;
      const total = last ? counterOf(last, c.metric) : undefined;
      $(c.stats).textContent = vals.length
        ? `avg ${fmtRate(vals.reduce((a, b) => a + b, 0) / vals.length)}/s · peak ${fmtRate(Math.max(...vals))}/s · total ${fmtInt(total)}`
        : (samples.length ? 'Collecting samples…' : 'Waiting for the first sample…');
      if (!$('view-rates').hidden) drawChart($(c.canvas), series, c.color);
    }
  }

  function renderRatesNote() {
    const note = $('rates-note');
    const last = samples.length ? samples[samples.length - 1] : null;
    if (state.mode === 'cluster' && last && last.cluster) {
      renderInto(note, 'Cluster-wide rates: the counters of every member, summed (each member reports ' +
        'its own in /cluster/overview; produces are counted on the leader that applied them). ' +
        'The table below is this node\'s own /metrics.');
      note.hidden = false;
    } else if (state.mode === 'cluster') {
      renderInto(note, `A member is unreachable: these are node ${state.selfId}'s own counters only ` +
        '(a follower\'s produces are forwarded to the leader and counted there).');
      note.hidden = false;
    } else {
      note.hidden = true;
    }
  }

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';
  }

  /** Step of 4 gridlines that covers v: 1, 2 or 5 x 10^k, at least 1 (so 0..4 msg/s minimum). */
  function niceStep(v) {
    const raw = Math.max(1, v / 4);
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 2.5, 5, 10]) if (raw <= m * p) return m * p;
    return 10 * p;
  }

  function drawChart(canvas, series, colorVar) {
    const dpr = window.devicePixelRatio || 1;
    const cssW = canvas.clientWidth || 560;
    const cssH = canvas.clientHeight || 180;
    if (canvas.width !== Math.round(cssW * dpr) || canvas.height !== Math.round(cssH * dpr)) {
      canvas.width = Math.round(cssW * dpr);
      canvas.height = Math.round(cssH * dpr);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    const color = cssVar(colorVar);
    const grid = cssVar('--grid');
    const muted = cssVar('--muted');
    const left = 48;
    const right = 10;
    const top = 10;
    const bottom = 22;
    const w = cssW - left - right;
    const hgt = cssH - top - bottom;
    const now = Date.now();
    const t0 = now - WINDOW_MS;
    const vals = series.filter((p) => p.v !== null && p.t >= t0).map((p) => p.v);
    const step = niceStep(Math.max(0, ...vals));
    const max = step * 4;
    const x = (t) => left + ((t - t0) / WINDOW_MS) * w;
    const y = (v) => top + hgt - (v / max) * hgt;

    ctx.font = '11px system-ui, sans-serif';
    ctx.lineWidth = 1;
    ctx.strokeStyle = grid;
    ctx.fillStyle = muted;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (let i = 0; i <= 4; i++) {
      const v = step * i;
      const yy = Math.round(y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(left, yy);
      ctx.lineTo(left + w, yy);
      ctx.stroke();
      ctx.fillText(v >= 1000 ? nf.format(v) : String(v), left - 6, yy);
    }
    ctx.textBaseline = 'top';
    for (const [sec, label] of [[120, '−2 min'], [90, '−90 s'], [60, '−1 min'], [30, '−30 s'], [0, 'now']]) {
      const xx = x(now - sec * 1000);
      ctx.textAlign = sec === 120 ? 'left' : sec === 0 ? 'right' : 'center';
      ctx.fillText(label, xx, top + hgt + 6);
    }

    const pts = series.filter((p) => p.t >= t0);
    if (!pts.some((p) => p.v !== null)) {
      ctx.textAlign = 'center';
      ctx.textBaseline = 'middle';
      ctx.fillText('no data yet', left + w / 2, top + hgt / 2);
      return;
    }
    // Filled area and line, broken where a sample is missing.
    const runs = [];
    let run = [];
    for (const p of pts) {
      if (p.v === null) { if (run.length) runs.push(run); run = []; } else run.push(p);
    }
    if (run.length) runs.push(run);
    for (const r of runs) {
      ctx.beginPath();
      ctx.moveTo(x(r[0].t), y(0));
      for (const p of r) ctx.lineTo(x(p.t), y(p.v));
      ctx.lineTo(x(r[r.length - 1].t), y(0));
      ctx.closePath();
      ctx.globalAlpha = 0.15;
      ctx.fillStyle = color;
      ctx.fill();
      ctx.globalAlpha = 1;
      ctx.beginPath();
      r.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p.v)) : ctx.moveTo(x(p.t), y(p.v))));
      ctx.strokeStyle = color;
      ctx.lineWidth = 2;
      ctx.lineJoin = 'round';
      ctx.stroke();
      if (r.length === 1) {
        ctx.fillStyle = color;
        ctx.beginPath();
        ctx.arc(x(r[0].t), y(r[0].v), 2.5, 0, Math.PI * 2);
        ctx.fill();
      }
    }
  }

  const METRIC_ROWS = [
    ['broker_produce_requests_total', 'Produce requests', fmtInt],
    ['broker_produced_messages_total', 'Produced messages', fmtInt],
    ['broker_produced_bytes_total', 'Produced bytes', fmtBytes],
    ['broker_fetch_requests_total', 'Fetch requests', fmtInt],
    ['broker_fetched_messages_total', 'Fetched messages', fmtInt],
    ['broker_fetched_bytes_total', 'Fetched bytes', fmtBytes],
    ['broker_claimed_messages_total', 'Claimed messages', fmtInt],
    ['broker_forwarded_requests_total', 'Writes forwarded to the leader', fmtInt],
    ['broker_forward_errors_total', 'Forwarding errors', fmtInt],
    ['broker_longpoll_waiters', 'Long-poll fetches waiting', fmtInt],
    ['broker_disk_bytes', 'Bytes on disk', fmtBytes],
    ['broker_raft_elections_total', 'Elections', fmtInt],
    ['broker_raft_leader_changes_total', 'Leader changes', fmtInt],
    ['broker_raft_snapshots_total', 'Raft snapshots', fmtInt],
  ];

  function renderMetricsTable(m) {
    const items = [];
    const newest = samples[samples.length - 1];
    const oldest = samples.find((x) => x.m && x.lat && x.lat.length);
    if (newest && newest.lat && newest.lat.length) {
      const older = oldest && oldest !== newest ? oldest.lat : null;
      const p50 = quantile(0.5, newest.lat, older);
      const p99 = quantile(0.99, newest.lat, older);
      items.push(stat('Produce latency p50 / p99', p50 === null ? 'no produces' : `${fmtSeconds(p50)} / ${fmtSeconds(p99)}`,
        'broker_produce_latency_seconds, last 2 min'));
    }
    for (const [name, label, f] of METRIC_ROWS) {
      if (m.has(name)) items.push(stat(label, f(m.get(name)), name));
    }
    renderInto($('metrics-body'), items);
  }

  function stat(label, value, source) {
    return el('div', { class: 'stat' },
      el('dt', null, label),
      el('dd', null, el('span', { class: 'stat-value' }, value), el('code', { class: 'metric-name' }, source)));
  }

  // --------------------------------------------------------------- groups

  async function refreshGroups() {
    if (state.view !== 'groups') return;
    let names;
    try {
      const r = await api('GET', '/groups');
      names = Array.isArray(r && r.groups) ? r.groups.slice().sort() : [];
    } catch (e) {
      showError($('groups-error'), describe('Could not load consumer groups', e));
      $('groups-list').classList.add('stale');
      return;
    }
    const offs = await mapLimit(names, 4, (g) => api('GET', `/groups/${enc(g)}/offsets`));
    const topics = new Set();
    for (const o of offs) {
      if (o.ok && o.value && Array.isArray(o.value.offsets)) for (const x of o.value.offsets) topics.add(x.topic);
    }
    const tnames = Array.from(topics);
    const details = await loadTopicDetails(tnames);
    showError($('groups-error'), '');
    $('groups-list').classList.remove('stale');
    if (!names.length) {
      renderInto($('groups-list'), el('p', { class: 'empty panel' },
        'No consumer groups yet. A group appears once it commits an offset (POST /groups/{group}/offsets) or claims messages.'));
    } else {
      renderInto($('groups-list'), names.map((g, i) => groupCard(g, offs[i], details)));
    }
    $('groups-updated').textContent = `Updated ${fmtClock(new Date())} · every 5 s`;
  }

  function groupCard(name, res, details) {
    if (!res.ok) {
      return el('article', { class: 'group panel', 'data-group': name },
        el('header', { class: 'topic-head' }, el('h3', { class: 'topic-name' }, name)),
        el('p', { class: 'error-inline' }, describe('Could not load offsets', res.error)));
    }
    const offsets = Array.isArray(res.value.offsets) ? res.value.offsets.slice() : [];
    offsets.sort((a, b) => (a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1));
    let totalLag = 0;
    const rows = offsets.map((o) => {
      const d = details.get(o.topic);
      const p = d && !d.error && Array.isArray(d.partitions) ? d.partitions.find((x) => x.partition === o.partition) : null;
      let lagCell;
      let hwCell;
      let note = null;
      if (!p) {
        hwCell = el('td', { class: 'num muted' }, '–');
        lagCell = el('td', { class: 'num muted' }, '–');
        note = d && d.error && d.error.status === 404 ? 'topic or partition no longer exists' : 'high watermark unavailable';
      } else {
        const lag = p.high_watermark - o.offset;
        totalLag += Math.max(0, lag);
        hwCell = el('td', { class: 'num' }, fmtInt(p.high_watermark));
        lagCell = el('td', { class: `num lag ${lag > 0 ? 'lagging' : 'caught-up'}`, 'data-field': 'lag' }, fmtInt(lag));
        if (o.offset < p.log_start_offset) note = `behind the log start (${fmtInt(p.log_start_offset)}): older messages were removed by retention`;
        else if (lag < 0) note = 'committed past the high watermark';
      }
      return el('tr', { 'data-topic': o.topic, 'data-partition': o.partition },
        el('td', null, o.topic),
        el('td', { class: 'num' }, String(o.partition)),
        el('td', { class: 'num' }, fmtInt(o.offset)),
        hwCell, lagCell,
        el('td', { class: 'note-cell' }, note ? el('span', { class: 'muted' }, note) : null));
    });
    return el('article', { class: 'group panel', 'data-group': name },
      el('header', { class: 'topic-head' },
        el('h3', { class: 'topic-name' }, name),
        el('p', { class: 'topic-meta' },
          `${offsets.length} committed offset${offsets.length === 1 ? '' : 's'} · total lag `,
          el('strong', { class: totalLag > 0 ? 'lagging' : 'caught-up' }, fmtInt(totalLag)))),
      offsets.length
        ? el('div', { class: 'table-wrap' }, el('table', { class: 'data compact' },
          el('caption', { class: 'sr-only' }, `Committed offsets of group ${name}`),
          el('thead', null, el('tr', null,
            el('th', { scope: 'col' }, 'Topic'),
            el('th', { scope: 'col', class: 'num' }, 'Partition'),
            el('th', { scope: 'col', class: 'num' }, 'Committed offset'),
            el('th', { scope: 'col', class: 'num' }, 'High watermark'),
            el('th', { scope: 'col', class: 'num' }, 'Lag'),
            el('th', { scope: 'col' }, el('span', { class: 'sr-only' }, 'Notes')))),
          el('tbody', null, rows)))
        : el('p', { class: 'muted' }, 'No committed offsets.'));
  }

  // ----------------------------------------------------------------- start

  const clusterPoller = poller(refreshCluster, 2000);
  const topicsPoller = poller(refreshTopics, 2000);
  const groupsPoller = poller(refreshGroups, 5000);
  const ratesPoller = poller(sampleMetrics, SAMPLE_MS);

  function init() {
    initTabs();
    initMessages();
    $('create-topic').addEventListener('submit', createTopic);
    $('topic-filter').addEventListener('input', () => {
      const details = new Map();
      for (const t of state.topics) if (state.topicDetails.has(t.name)) details.set(t.name, state.topicDetails.get(t.name));
      renderTopics(state.topics, details);
    });
    let resizeTimer = null;
    window.addEventListener('resize', () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(drawCharts, 100); });
    clusterPoller.start();
    ratesPoller.start();
    topicsPoller.start();
    groupsPoller.start();
    applyHash();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
