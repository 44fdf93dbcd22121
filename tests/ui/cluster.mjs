// Starts a real local broker cluster (or one standalone broker) on free
// loopback ports with throw-away directories, for the dashboard test.
//
//   import { startCluster } from './cluster.mjs';
//   const c = await startCluster({ nodes: 3 });   // c.nodes[i].url, c.stop()
//
// Also runnable by hand while working on www/ (Ctrl-C stops everything):
//   BROKER_BIN=/work/main/build-ui/broker node tests/ui/cluster.mjs [NODES]
//
// Every process started here is killed (SIGTERM, then SIGKILL) by stop(), and
// also when this Node process exits or gets SIGINT/SIGTERM, so a failing test
// leaves nothing running. Temp dirs are removed unless KEEP_TMP=1.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '..', '..');
export const BROKER_BIN = process.env.BROKER_BIN || '/work/main/build/broker';
export const WWW_DIR = process.env.BROKER_WWW || path.join(REPO, 'www');

const live = new Set();

function killAllSync() {
  for (const p of live) {
    try { p.kill('SIGKILL'); } catch { /* already gone */ }
  }
  live.clear();
}
process.on('exit', killAllSync);

/** A TCP port the kernel just handed out on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function getJson(url, timeoutMs = 1000) {
  const ctl = new AbortController();
  const t = setTimeout(() => ctl.abort(), timeoutMs);
  try {
    const r = await fetch(url, { signal: ctl.signal });
    const text = await r.text();
    let body = null;
    try { body = JSON.parse(text); } catch { body = text; }
    return { status: r.status, body };
  } finally {
    clearTimeout(t);
  }
}

/** Waits until pred() returns a truthy value (errors count as "not yet"). */
export async function waitFor(pred, timeoutMs, what, intervalMs = 100) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await pred();
      if (v) return v;
    } catch (e) { last = e; }
    if (Date.now() > end) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}` +
        (last ? ` (last error: ${last.message})` : ''));
    }
    await sleep(intervalMs);
  }
}

function stopProc(proc, timeoutMs = 10000) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      live.delete(proc);
      resolve();
      return;
    }
    const t = setTimeout(() => { try { proc.kill('SIGKILL'); } catch {} }, timeoutMs);
    proc.once('exit', () => { clearTimeout(t); live.delete(proc); resolve(); });
    try { proc.kill('SIGTERM'); } catch { /* gone */ }
  });
}

/**
 * Starts `nodes` brokers (1 = standalone, no Raft) and waits until every
 * node answers /healthz and (cluster) all of them know the same leader.
 */
export async function startCluster({ nodes = 3, bin = BROKER_BIN, www = WWW_DIR,
  overrides = {}, log = () => {} } = {}) {
  if (!fs.existsSync(bin)) throw new Error(`broker binary not found: ${bin} (set BROKER_BIN)`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ui-cluster-'));
  const specs = [];
  for (let i = 1; i <= nodes; i++) {
    specs.push({ id: i, http: await freePort(), raft: await freePort(),
      dir: path.join(tmp, `node${i}`) });
  }
  const clustered = nodes > 1;
  const procs = [];
  const cluster = {
    tmp,
    nodes: specs.map((s) => ({ id: s.id, url: `http://127.0.0.1:${s.http}`,
      httpPort: s.http, raftPort: s.raft, dir: s.dir,
      logFile: path.join(s.dir, 'broker.log'), stderrFile: path.join(s.dir, 'stderr.txt') })),
    /** Stops one node (SIGTERM, SIGKILL after 10 s); the others keep running. */
    async stopNode(id) {
      await stopProc(procs[id - 1]);
    },
    async stop() {
      await Promise.all(procs.map((p) => stopProc(p)));
      if (process.env.KEEP_TMP !== '1') fs.rmSync(tmp, { recursive: true, force: true });
      else log(`kept ${tmp}`);
    },
    /** Last lines of every node's log, for failure reports. */
    tails(lines = 30) {
      return cluster.nodes.map((n) => {
        let text = '';
        for (const f of [n.stderrFile, n.logFile]) {
          try { text += fs.readFileSync(f, 'utf8'); } catch { /* none */ }
        }
        return `--- node ${n.id} ---\n` + text.split('\n').slice(-lines).join('\n');
      }).join('\n');
    },
  };

  try {
    for (const s of specs) {
      fs.mkdirSync(s.dir, { recursive: true });
      const cfg = {
        data_dir: path.join(s.dir, 'data'),
        default_partitions: 1,
        auto_create_topics: true,
        server: { host: '127.0.0.1', port: s.http, advertise: `127.0.0.1:${s.http}`,
          log_file: path.join(s.dir, 'broker.log'), log_level: 'info' },
        cluster: clustered ? {
          enabled: true, node_id: s.id, raft_address: `127.0.0.1:${s.raft}`,
          initial_members: specs.map((o) => `127.0.0.1:${o.raft}`),
          data_dir: path.join(s.dir, 'raft'),
          rtt_ms: 50, election_rtt: 10, heartbeat_rtt: 1, check_quorum: true,
        } : { enabled: false },
        ...overrides,
      };
      const cfgPath = path.join(s.dir, 'config.json');
      fs.writeFileSync(cfgPath, JSON.stringify(cfg, null, 1));
      const err = fs.openSync(path.join(s.dir, 'stderr.txt'), 'a');
      const p = spawn(bin, [`-config=${cfgPath}`, '--www', www],
        { cwd: s.dir, stdio: ['ignore', err, err] });
      fs.closeSync(err);
      live.add(p);
      procs.push(p);
      p.once('exit', () => live.delete(p));
      log(`node ${s.id}: pid ${p.pid}, http 127.0.0.1:${s.http}, raft 127.0.0.1:${s.raft}`);
    }
    for (const n of cluster.nodes) {
      await waitFor(async () => {
        const p = procs[n.id - 1];
        if (p.exitCode !== null) throw new Error(`node ${n.id} exited with ${p.exitCode}`);
        return (await getJson(`${n.url}/healthz`)).status === 200;
      }, 15000, `node ${n.id} /healthz`);
    }
    if (clustered) {
      cluster.leaderId = await waitFor(async () => {
        const ids = new Set();
        for (const n of cluster.nodes) {
          const r = await getJson(`${n.url}/cluster/status`);
          if (r.status !== 200 || !r.body.leader) return null;
          ids.add(r.body.leader.node_id);
        }
        return ids.size === 1 ? [...ids][0] : null;
      }, 30000, 'all nodes to agree on a leader');
    } else {
      cluster.leaderId = 1;
    }
  } catch (e) {
    const detail = cluster.tails();
    await cluster.stop();
    e.message += '\n' + detail;
    throw e;
  }
  return cluster;
}

// CLI: keep a cluster running for manual work on the dashboard.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const n = Number(process.argv[2] || 3);
  const c = await startCluster({ nodes: n, log: (m) => console.log(m) });
  console.log(`leader: node ${c.leaderId}`);
  for (const node of c.nodes) console.log(`dashboard: ${node.url}/`);
  const bye = async () => { await c.stop(); process.exit(0); };
  process.on('SIGINT', bye);
  process.on('SIGTERM', bye);
  setInterval(() => {}, 1 << 30);
}
