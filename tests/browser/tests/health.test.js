// The Infrastructure Health Dashboard (/health) in a real browser: headless
// Chromium driven by playwright-core. The demo (LINEAGE_URL, started by
// ../run.sh) ingests steadily, so its ingest rate is non-zero and the page's
// polling shows it without a reload. A second ledger of our own (the
// LINEAGE_BIN binary, `serve --max-in-flight 1`) is made to shed load
// deterministically: one governance long-poll holds its only request slot,
// so the next request is answered 503 overloaded; then the dashboard shows
// the degraded banner and /readyz says the same. Loopback only.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, until as wait } from '../support.js';

const BASE = process.env.LINEAGE_URL;
const BIN = process.env.LINEAGE_BIN;
const SHOTS = new URL('../screenshots/', import.meta.url).pathname;

let browser;
let context;

/** Polls every 100 ms, 60 s at most unless told. */
const until = (what, check, ms = 60_000) => wait(what, check, ms, 100);

before(async () => {
  assert.ok(BASE && BASE.startsWith('http://127.0.0.1:'), 'LINEAGE_URL is a loopback URL');
  assert.ok(BIN, 'LINEAGE_BIN names the lineage binary');
  ({ browser, context } = await launch());
});

after(async () => {
  await browser?.close();
});

async function open(base, path) {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.errors = errors;
  const resp = await page.goto(base + path);
  assert.equal(resp.status(), 200, `${path} answers 200`);
  return page;
}

/** A rate such as "12.3/s" as a number (NaN for "–"). */
const rate = (text) => Number.parseFloat(text.replace(/,/g, ''));

test('the health page shows the demo ingesting, and its polling updates it without a reload', async () => {
  // The sampler takes a sample a second: wait for a minute's baseline of a few.
  await until('a non-zero ingest rate', async () => {
    const doc = await (await fetch(`${BASE}/health.json`)).json();
    return doc.values.ingest_minute_per_second > 0;
  });
  const page = await open(BASE, '/health');
  assert.match(await page.locator('h1').innerText(), /keeping up/);
  const first = rate(await page.locator('#ingest-minute').innerText());
  assert.ok(first > 0, `ingest rate ${first}`);
  assert.equal(await page.locator('#health-banner').isVisible(), false, 'no degraded banner');
  assert.match(await page.locator('#health-state').innerText(), /Healthy/);
  // Polling: the figures' time changes, in the same document.
  await page.evaluate(() => { window.notReloaded = true; });
  const at = await page.locator('#health-at').innerText();
  await until('a poll', async () => (await page.locator('#health-at').innerText()) !== at, 15_000);
  assert.equal(await page.evaluate(() => window.notReloaded), true, 'the page was not reloaded');
  const later = rate(await page.locator('#ingest-minute').innerText());
  assert.ok(later > 0, `ingest rate after a poll ${later}`);
  // The charts are server-drawn SVG with an accessible name, and numbers beside them.
  const chart = page.locator('[data-chart="ingest"] svg[role="img"]');
  assert.match(await chart.getAttribute('aria-label'), /Entries appended per second, last 10 minutes: latest [\d.]+\/s/);
  assert.ok(await page.locator('[data-chart="ingest"] polyline').count() > 0, 'the ingest line is drawn');
  assert.ok(rate(await page.locator('dd[data-figure="tree_size"]').innerText()) > 100, 'tree size');
  assert.match(await page.locator('dd[data-figure="rss"]').innerText(), /MiB/);
  assert.ok(Number(await page.locator('dd[data-figure="connections"]').innerText()) >= 1, 'this browser is connected');
  assert.match(await page.locator('#rejection-table').innerText(), /key_expired/);
  await page.screenshot({ path: `${SHOTS}health.png`, fullPage: true });
  assert.deepEqual(page.errors, [], 'no script or console errors');
  await page.close();
});

/** Starts `lineage serve` on a throwaway data directory; resolves with its URL and a stop function. */
async function serve(flags) {
  const dir = mkdtempSync(join(tmpdir(), 'lineage-health-'));
  const child = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', join(dir, 'ledger'), ...flags], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((r) => child.on('exit', r));
  const stop = async () => {
    child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const url = await until('the second ledger to listen', async () => {
      if (child.exitCode !== null) throw new Error(`lineage serve exited: ${err}`);
      return /listening on (http:\/\/\S+)/.exec(out)?.[1];
    }, 30_000);
    return { url, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

test('an overloaded ledger shows the degraded banner, and /readyz agrees', async () => {
  const ledger = await serve(['--max-in-flight', '1']);
  try {
    assert.equal((await fetch(`${ledger.url}/readyz`)).status, 200, 'ready before the flood');
    // One long-poll of the (empty) governance feed waits for 60 s, holding
    // the only request slot...
    // A long-poll that ended early (it should not) is sent again, and what
    // it answered is kept for the failure message.
    let hold;
    let held;
    let settled = true;
    const answers = [];
    const holdSlot = () => {
      settled = false;
      hold = new AbortController();
      held = fetch(`${ledger.url}/v1/governance?wait=60`, { signal: hold.signal })
        .then(async (r) => { answers.push(`${r.status} ${await r.text()}`); })
        .catch((e) => { answers.push(String(e)); })
        .finally(() => { settled = true; });
    };
    // ...so every other request is shed with 503 overloaded.
    let shed;
    try {
      shed = await until('a request shed with 503 overloaded', async () => {
        if (settled) holdSlot();
        const r = await fetch(`${ledger.url}/v1/log`);
        const body = await r.text();
        return r.status === 503 ? JSON.parse(body) : null;
      }, 20_000);
    } catch (e) {
      throw new Error(`${e.message}; the long-polls answered: ${JSON.stringify(answers)}`);
    }
    assert.equal(shed.code, 'overloaded');
    hold.abort();
    await held;
    const page = await until('the slot to be free', async () => {
      const r = await fetch(`${ledger.url}/health.json`);
      return r.status === 200 ? open(ledger.url, '/health') : null;
    }, 10_000);
    const banner = page.locator('#health-banner');
    assert.equal(await banner.isVisible(), true, 'the degraded banner is shown');
    assert.match(await banner.innerText(), /Degraded/);
    assert.match(await banner.locator('li[data-code="overloaded"]').innerText(), /shed with 503 overloaded/);
    assert.match(await page.locator('#health-state').innerText(), /Degraded/);
    assert.ok(Number(await page.locator('dd[data-figure="overloaded"]').innerText()) >= 1, 'shed requests are counted');
    const ready = await fetch(`${ledger.url}/readyz`);
    assert.equal(ready.status, 503);
    assert.match(await ready.text(), /^degraded: overloaded: /);
    await page.screenshot({ path: `${SHOTS}health-degraded.png`, fullPage: false });
    // The window passes and the page's polling clears the banner by itself.
    await until('the banner to clear', async () => !(await banner.isVisible()), 30_000);
    assert.match(await page.locator('#health-state').innerText(), /Healthy/);
    assert.equal((await fetch(`${ledger.url}/readyz`)).status, 200, 'ready again');
    // With one request slot, the browser's parallel loads (stylesheet,
    // scripts, the first poll) can themselves be shed: that is the point of
    // this ledger, not a page error. Anything else is.
    const errors = page.errors.filter((e) => !/responded with a status of 503/.test(e));
    assert.deepEqual(errors, [], 'no script or console errors');
    await page.close();
  } finally {
    await ledger.stop();
  }
});
