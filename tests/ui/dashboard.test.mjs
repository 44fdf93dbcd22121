// Browser test of the operator dashboard (www/) against a real broker cluster.
//
//   BROKER_BIN=/work/main/build/broker node tests/ui/dashboard.test.mjs
//
// Needs: node >= 20, `npm ci` done in tests/ui (playwright-core only) and
// Debian's chromium at /usr/bin/chromium (or CHROMIUM_PATH). Installs nothing
// itself: tests/ui/run.sh does that. Starts a 3-node cluster and then one
// standalone broker on free loopback ports in temp dirs; every broker is
// killed at the end, also on failure, timeout or Ctrl-C.
//
// Env: BROKER_BIN (default /work/main/build/broker), UI_SCREENSHOT_DIR (default:
// a new temp dir; the PNG paths are printed), CHROMIUM_PATH, UI_TEST_TIMEOUT_S
// (default 240), KEEP_TMP=1 keeps the brokers' temp dirs.
//
// Last line: "ui: N passed, N failed, N skipped"; exit status 0 only if all passed.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startCluster, waitFor, BROKER_BIN, WWW_DIR } from './cluster.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SHOTS = process.env.UI_SCREENSHOT_DIR || fs.mkdtempSync(path.join(os.tmpdir(), 'ui-shots-'));
const TOTAL_TIMEOUT_S = Number(process.env.UI_TEST_TIMEOUT_S || 240);
const WAIT = 15000; // ms for one thing to show up on the page (refresh is every 2 s)

const log = (...a) => console.log(...a);

// ------------------------------------------------------------ tiny runner

const results = [];
let broken = false;
const shots = [];

async function step(name, fn) {
  if (broken) {
    results.push({ name, status: 'skipped' });
    log(`SKIP ${name}`);
    return;
  }
  const t0 = Date.now();
  try {
    await fn();
    results.push({ name, status: 'passed' });
    log(`PASS ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    results.push({ name, status: 'failed' });
    broken = true;
    log(`FAIL ${name} (${Date.now() - t0} ms)\n  ${String(e && e.stack ? e.stack : e).split('\n').join('\n  ')}`);
    await failureShot(name);
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

// --------------------------------------------------------- broker access

async function http(method, url, body, headers = {}) {
  const init = { method, headers: { ...headers } };
  if (body !== undefined) {
    if (typeof body === 'string' || body instanceof Uint8Array) {
      init.body = body;
    } else {
      init.body = JSON.stringify(body);
      init.headers['Content-Type'] = 'application/json';
    }
  }
  const r = await fetch(url, init);
  const text = await r.text();
  let data = text;
  try { data = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, data };
}

async function expectStatus(p, status, what) {
  const r = await p;
  assert(r.status === status, `${what}: expected HTTP ${status}, got ${r.status} ${JSON.stringify(r.data)}`);
  return r.data;
}

// ------------------------------------------------------------ page access

let browser = null;
let page = null;
const pageErrors = [];

async function newPage(url) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const p = await ctx.newPage();
  p.on('pageerror', (e) => { pageErrors.push(e.message); log(`  page error: ${e.message}`); });
  // Chromium logs every 4xx answer as a console error; the test provokes some on purpose.
  p.on('console', (m) => { if (m.type() === 'error') log(`  browser console: ${m.text()}`); });
  p.on('dialog', (d) => { log(`  dialog: ${d.message()} -> accept`); d.accept(); });
  await p.goto(url, { waitUntil: 'load' });
  return p;
}

/** Waits until fn() evaluated in the page returns a truthy value. */
async function waitPage(what, fn, arg, timeout = WAIT) {
  try {
    const h = await page.waitForFunction(fn, arg, { timeout, polling: 200 });
    return await h.jsonValue();
  } catch (e) {
    throw new Error(`page never showed ${what} within ${timeout} ms (${e.message.split('\n')[0]})`);
  }
}

async function shot(name, { fullPage = true } = {}) {
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage });
  shots.push(file);
  log(`  screenshot: ${file}`);
  return file;
}

async function failureShot(name) {
  if (!page) return;
  try {
    const file = path.join(SHOTS, `FAILED-${name.replace(/[^A-Za-z0-9]+/g, '-').slice(0, 60)}.png`);
    await page.screenshot({ path: file, fullPage: true });
    shots.push(file);
    log(`  screenshot of the failure: ${file}`);
  } catch { /* page gone */ }
}

async function openView(name) {
  await page.click(`#tab-${name}`);
  await page.waitForSelector(`#view-${name}:not([hidden])`, { timeout: 5000 });
}

/** Rows of the Cluster table as the page shows them. */
function memberRows() {
  return page.$$eval('#members-body tr[data-node-id]', (rows) => rows.map((r) => ({
    id: Number(r.getAttribute('data-node-id')),
    state: r.getAttribute('data-state'),
    leaderMarked: !!r.querySelector('.badge.leader'),
    transferButton: !!r.querySelector('button[data-transfer]'),
    health: (r.querySelector('.badge.up, .badge.down') || {}).textContent || '',
  })));
}

// ------------------------------------------------------------------ test

async function main() {
  assert(fs.existsSync(CHROMIUM), `chromium not found at ${CHROMIUM} (apt-get install -y chromium, or run tests/ui/run.sh)`);
  assert(fs.existsSync(BROKER_BIN), `broker binary not found at ${BROKER_BIN} (set BROKER_BIN)`);
  fs.mkdirSync(SHOTS, { recursive: true });
  log(`broker: ${BROKER_BIN}\nwww: ${WWW_DIR}\nchromium: ${CHROMIUM}\nscreenshots: ${SHOTS}`);

  let cluster = null;
  let standalone = null;
  const stopAll = async () => {
    if (browser) { try { await browser.close(); } catch { /* gone */ } browser = null; }
    if (cluster) { await cluster.stop(); cluster = null; }
    if (standalone) { await standalone.stop(); standalone = null; }
  };
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, async () => { log(`got ${sig}, stopping brokers`); await stopAll(); process.exit(1); });
  }
  const watchdog = setTimeout(async () => {
    log(`FAIL whole test: still running after ${TOTAL_TIMEOUT_S} s`);
    await failureShot('timeout');
    await stopAll();
    process.exit(1);
  }, TOTAL_TIMEOUT_S * 1000);

  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run'],
    });

    let pageNode; // the node whose dashboard the browser has open (a follower at first)
    let node; // url helpers
    const topic = `ui-orders-${process.pid}`;
    const group = `ui-billing-${process.pid}`;

    await step('start a 3-node cluster', async () => {
      cluster = await startCluster({ nodes: 3, log: (m) => log(`  ${m}`) });
      log(`  leader: node ${cluster.leaderId}`);
      pageNode = cluster.nodes.find((n) => n.id !== cluster.leaderId);
      node = (id) => cluster.nodes[id - 1].url;
    });

    await step('cluster view shows 3 members and marks the leader', async () => {
      page = await newPage(`${pageNode.url}/`);
      await waitPage('3 member rows, all up, one leader', () => {
        const rows = document.querySelectorAll('#members-body tr[data-node-id]');
        return rows.length === 3 && document.querySelectorAll('#members-body .badge.up').length === 3 &&
          document.querySelectorAll('#members-body tr.is-leader').length === 1;
      });
      const rows = await memberRows();
      assert(rows.length === 3, `expected 3 rows, got ${JSON.stringify(rows)}`);
      const marked = rows.filter((r) => r.leaderMarked).map((r) => r.id);
      assert(marked.length === 1 && marked[0] === cluster.leaderId,
        `leader marker on ${JSON.stringify(marked)}, API says node ${cluster.leaderId}`);
      for (const r of rows) {
        const follower = r.id !== cluster.leaderId;
        assert(r.transferButton === follower,
          `node ${r.id}: transfer button ${r.transferButton ? 'shown' : 'missing'} (${follower ? 'follower' : 'leader'})`);
      }
      const header = await page.textContent('#served');
      assert(header.includes(`Node ${pageNode.id}`) && header.includes(`leader: node ${cluster.leaderId}`),
        `header says "${header}"`);
      await shot('01-cluster');
    });

    await step('"transfer leadership here" moves the leader to the node serving the page', async () => {
      await page.click(`button[data-transfer="${pageNode.id}"]`);
      await waitPage(`node ${pageNode.id} marked as leader`, (id) => {
        const row = document.querySelector(`#members-body tr[data-node-id="${id}"]`);
        return row && row.classList.contains('is-leader') && row.getAttribute('data-state') === 'leader';
      }, pageNode.id, 25000);
      const st = await expectStatus(http('GET', `${pageNode.url}/cluster/status`), 200, 'status');
      assert(st.leader && st.leader.node_id === pageNode.id, `API leader is ${JSON.stringify(st.leader)}`);
      cluster.leaderId = pageNode.id;
      const rows = await memberRows();
      assert(rows.filter((r) => r.leaderMarked).length === 1, `leader markers: ${JSON.stringify(rows)}`);
    });

    await step('creating a topic in the form lists it', async () => {
      await openView('topics');
      await page.fill('#ct-name', topic);
      await page.fill('#ct-partitions', '2');
      await page.click('#ct-submit');
      await waitPage('the "created" confirmation', () => /Created topic/.test(document.getElementById('ct-result').textContent));
      await waitPage(`topic ${topic} with 2 partitions`, (t) => {
        const card = document.querySelector(`article.topic[data-topic="${t}"]`);
        return card && card.querySelectorAll('tr[data-partition]').length === 2;
      }, topic);
      // Every node has it once it applied the entry (a follower may lag a moment behind).
      for (const n of cluster.nodes) {
        const info = await waitFor(async () => {
          const r = await http('GET', `${n.url}/topics/${topic}`);
          return r.status === 200 && r.data;
        }, WAIT, `topic ${topic} on node ${n.id}`);
        assert(info.partitions.length === 2, `node ${n.id}: topic has ${info.partitions.length} partitions`);
      }
    });

    await step('a topic name the broker refuses shows a readable error', async () => {
      // Client-side check first (never reaches the broker) ...
      await page.fill('#ct-name', 'bad name!');
      await page.click('#ct-submit');
      await waitPage('a validation message', () => document.getElementById('ct-result').classList.contains('bad'));
      // ... then the broker's own 409 for an existing topic.
      await page.fill('#ct-name', topic);
      await page.click('#ct-submit');
      const msg = await waitPage('the 409 message', () => {
        const r = document.getElementById('ct-result');
        return r.classList.contains('bad') && /topic_exists|exists/.test(r.textContent) && r.textContent;
      });
      log(`  shown: ${msg}`);
    });

    const produced = [];
    await step('producing over HTTP moves the high watermark on the page', async () => {
      // Sent to another node: a follower forwards it to the leader.
      const other = cluster.nodes.find((n) => n.id !== pageNode.id);
      const values = [
        { hello: 'dashboard', n: 1, html: '<img src=x onerror="window.__pwned=1">' },
        { hello: 'dashboard', n: 2, nested: { list: [1, 2, 3], ok: true } },
        'a plain string value',
      ];
      for (let i = 0; i < values.length; i++) {
        const r = await expectStatus(http('POST', `${other.url}/topics/${topic}/messages`,
          { key: `key-${i}`, value: values[i], partition: 1, headers: { source: 'ui-test', 'x-n': String(i) } }),
        201, 'produce');
        produced.push(r);
      }
      // A raw value that is not UTF-8: fetched back as base64.
      await expectStatus(http('POST', `${other.url}/topics/${topic}/messages?partition=1&key=bin`,
        new Uint8Array([0xff, 0xfe, 0x00, 0x01, 0x80]), { 'Content-Type': 'application/octet-stream' }), 201, 'raw produce');
      await waitPage('high watermark 4 on partition 1 and 0 on partition 0', (t) => {
        const card = document.querySelector(`article.topic[data-topic="${t}"]`);
        if (!card) return false;
        const hw = (p) => card.querySelector(`tr[data-partition="${p}"] td[data-field="high_watermark"]`).textContent.trim();
        return hw(1) === '4' && hw(0) === '0';
      }, topic);
      await shot('02-topics');
    });

    await step('the message browser shows the produced values, keys and headers', async () => {
      await page.click(`article.topic[data-topic="${topic}"] tr[data-partition="1"] a`);
      await page.waitForSelector('#view-messages:not([hidden])', { timeout: 5000 });
      await waitPage('4 messages', () => document.querySelectorAll('#messages-list li[data-offset]').length === 4);
      const items = await page.$$eval('#messages-list li[data-offset]', (lis) => lis.map((li) => ({
        offset: Number(li.getAttribute('data-offset')),
        text: li.textContent,
        value: li.querySelector('pre.value').textContent,
        imgs: li.querySelectorAll('img').length,
      })));
      assert(items[0].value.includes('"hello": "dashboard"'), `offset 0 value: ${items[0].value}`);
      assert(items[0].value.includes('<img src=x onerror='), 'markup in a value must be shown as text');
      assert(items.every((i) => i.imgs === 0), 'a value was inserted as HTML');
      assert(await page.evaluate(() => window.__pwned === undefined), 'script in a value ran');
      assert(items[0].text.includes('key-0') && items[0].text.includes('source') && items[0].text.includes('ui-test'),
        `key/headers missing: ${items[0].text}`);
      assert(items[1].value.includes('"list": [\n'), `JSON not pretty-printed: ${items[1].value}`);
      assert(items[2].value === 'a plain string value', `string value: ${items[2].value}`);
      assert(/binary/.test(items[3].text) && /base64/.test(items[3].text) && items[3].value === '//4AAYA=',
        `base64 value not labelled: ${items[3].text}`);
      const range = await page.textContent('#mb-range');
      assert(/high watermark 4/.test(range), `range line: ${range}`);
      await shot('03-messages');
    });

    await step('message paging goes forward and back', async () => {
      await page.selectOption('#mb-limit', '10'); // reloads the page of messages
      await page.waitForSelector('#mb-load:not([disabled])', { timeout: WAIT });
      await page.fill('#mb-offset', '1');
      await page.click('#mb-load');
      await waitPage('offsets 1..3', () => {
        const o = Array.from(document.querySelectorAll('#messages-list li[data-offset]')).map((l) => l.getAttribute('data-offset'));
        return o.join(',') === '1,2,3';
      });
      await page.click('#mb-prev');
      await waitPage('offset 0 first again', () =>
        (document.querySelector('#messages-list li[data-offset]') || {}).getAttribute?.('data-offset') === '0');
      await page.fill('#mb-offset', '99');
      await page.click('#mb-load');
      const err = await waitPage('an out-of-range message', () => {
        const e = document.getElementById('messages-error');
        return !e.hidden && e.textContent;
      });
      assert(/outside/.test(err), `416 shown as: ${err}`);
      await page.click('#mb-first');
      await waitPage('messages again', () => document.querySelectorAll('#messages-list li[data-offset]').length === 4);
    });

    await step('consumer groups show committed offsets and lag', async () => {
      await expectStatus(http('POST', `${node(1)}/groups/${group}/offsets`, { topic, partition: 1, offset: 1 }), 200, 'commit');
      await openView('groups');
      await waitPage(`group ${group} with lag 3`, (g) => {
        const card = document.querySelector(`article.group[data-group="${g}"]`);
        const lag = card && card.querySelector('td[data-field="lag"]');
        return lag && lag.textContent.trim() === '3';
      }, group);
      await shot('04-groups');
    });

    await step('rates view charts produce and fetch messages/s from /metrics', async () => {
      await openView('rates');
      // Produce to the page's node (now the leader) for a few seconds so rates are non-zero.
      const until = Date.now() + 7000;
      let i = 0;
      while (Date.now() < until) {
        const records = Array.from({ length: 20 }, (_, k) => ({ key: `r${k}`, value: { batch: i, k } }));
        await expectStatus(http('POST', `${pageNode.url}/topics/${topic}/messages`, { records }), 201, 'batch');
        await http('GET', `${pageNode.url}/topics/${topic}/partitions/0/messages?offset=earliest&limit=50`);
        i++;
        await new Promise((r) => setTimeout(r, 150));
      }
      await waitPage('a non-zero produce rate and a fetch rate', () => {
        const p = document.getElementById('produce-stats').textContent;
        const f = document.getElementById('fetch-stats').textContent;
        return /peak [1-9]/.test(p) && /peak [1-9]/.test(f);
      });
      const drawn = await page.evaluate(() => {
        const c = document.getElementById('chart-produce');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let k = 3; k < d.length; k += 4) if (d[k] > 0) n++;
        return n;
      });
      assert(drawn > 500, `produce chart looks empty (${drawn} painted pixels)`);
      await shot('05-rates');
    });

    await step('topic delete (confirmed) removes it from the list', async () => {
      const doomed = `${topic}-tmp`;
      await expectStatus(http('POST', `${node(1)}/topics`, { name: doomed, partitions: 1 }), 201, 'create');
      await openView('topics');
      await page.waitForSelector(`article.topic[data-topic="${doomed}"]`, { timeout: WAIT });
      await page.click(`article.topic[data-topic="${doomed}"] button.danger`);
      await page.waitForSelector(`article.topic[data-topic="${doomed}"]`, { state: 'detached', timeout: WAIT });
      for (const n of cluster.nodes) {
        await waitFor(async () => (await http('GET', `${n.url}/topics/${doomed}`)).status === 404,
          WAIT, `topic ${doomed} gone from node ${n.id}`);
      }
    });

    await step('an unreachable member is shown as such and the page keeps working', async () => {
      const victim = cluster.nodes.find((n) => n.id !== pageNode.id);
      await cluster.stopNode(victim.id);
      await openView('cluster');
      await waitPage(`node ${victim.id} unreachable`, (id) => {
        const row = document.querySelector(`#members-body tr[data-node-id="${id}"]`);
        return row && row.classList.contains('is-down') && /unreachable/.test(row.textContent);
      }, victim.id);
      const rows = await memberRows();
      assert(rows.length === 3, `rows: ${JSON.stringify(rows)}`);
      assert(!rows.find((r) => r.id === victim.id).transferButton, 'transfer offered to a dead node');
      await shot('06-cluster-unreachable', { fullPage: false });
      // The rest of the page still answers.
      await openView('topics');
      await page.waitForSelector(`article.topic[data-topic="${topic}"]`, { timeout: WAIT });
    });

    await step('stop the cluster', async () => {
      await page.context().close();
      page = null;
      await cluster.stop();
      cluster = null;
    });

    await step('standalone mode: one member, no transfer button', async () => {
      standalone = await startCluster({ nodes: 1, log: (m) => log(`  ${m}`) });
      page = await newPage(`${standalone.nodes[0].url}/`);
      await waitPage('one member row, leader', () => {
        const rows = document.querySelectorAll('#members-body tr[data-node-id]');
        return rows.length === 1 && rows[0].classList.contains('is-leader');
      });
      const rows = await memberRows();
      assert(rows.length === 1 && !rows[0].transferButton, `standalone rows: ${JSON.stringify(rows)}`);
      assert(/standalone/.test(await page.textContent('#served')), 'header does not say standalone');
      await shot('07-standalone', { fullPage: false });
      await expectStatus(http('POST', `${standalone.nodes[0].url}/topics/solo/messages`, { value: { solo: true } }), 201, 'produce');
      await openView('topics');
      await page.waitForSelector('article.topic[data-topic="solo"]', { timeout: WAIT });
    });

    await step('no script errors on the page', async () => {
      assert(pageErrors.length === 0, `page errors: ${pageErrors.join(' | ')}`);
    });
  } finally {
    clearTimeout(watchdog);
    await stopAll();
  }
}

let crashed = null;
try {
  await main();
} catch (e) {
  crashed = e;
  log(`FAIL setup: ${e && e.stack ? e.stack : e}`);
}
const count = (s) => results.filter((r) => r.status === s).length;
const failed = count('failed') + (crashed ? 1 : 0);
if (shots.length) log(`screenshots:\n${shots.map((s) => `  ${s}`).join('\n')}`);
log(`ui: ${count('passed')} passed, ${failed} failed, ${count('skipped')} skipped`);
process.exit(failed === 0 && count('passed') > 0 ? 0 : 1);
