// The Lineage Explorer in a real browser: headless Chromium (the Debian
// package) driven by playwright-core, against `lineage demo` (started by
// ../run.sh, which passes its URL in LINEAGE_URL). Loopback only.
import { createPrivateKey, createPublicKey, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, until } from '../support.js';

const BASE = process.env.LINEAGE_URL;
const SHOTS = new URL('../screenshots/', import.meta.url).pathname;

let browser;
let context;

before(async () => {
  assert.ok(BASE && BASE.startsWith('http://127.0.0.1:'), 'LINEAGE_URL is a loopback URL');
  // The demo's initial burst, its refused faults and its governance scenes
  // (the contractor's expired key is the last).
  await until('the demo data', async () => {
    const r = await fetch(`${BASE}/metrics`);
    const text = await r.text();
    return text.includes('code="key_expired"');
  });
  ({ browser, context } = await launch());
});

after(async () => {
  await browser?.close();
});

/** A new page that fails the test on any script error or console error. */
async function open(path, ctx = context) {
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.errors = errors;
  if (path) {
    const resp = await page.goto(BASE + path);
    assert.equal(resp.status(), 200, `${path} answers 200`);
  }
  return page;
}

async function shot(page, name, fullPage = true) {
  await page.screenshot({ path: `${SHOTS}${name}.png`, fullPage });
}

function clean(page) {
  assert.deepEqual(page.errors, [], 'no script or console errors');
}

test('every page renders, with its heading and no script errors', async () => {
  const pages = [
    ['/', 'dashboard', /lineage\.local\/log|Transparency log/i],
    ['/entries', 'entries', /Entries/],
    ['/entries?kind=authz.deny', 'entries-denied', /Entries/],
    ['/checkpoints', 'checkpoints', /Checkpoints/],
    ['/runtimes', 'runtimes', /Runtimes/],
    ['/runtimes/tools%2Fsandbox', 'runtime', /tools\/sandbox/],
  ];
  for (const [path, name, heading] of pages) {
    const page = await open(path);
    assert.match(await page.locator('h1').first().innerText(), heading, path);
    await shot(page, name);
    clean(page);
    await page.close();
  }
  // A workload, reached by clicking through from the entries list.
  const page = await open('/entries?kind=workload.spawn');
  await page.locator('table.entries tbody tr').first().locator('td:nth-child(3) a').click();
  await page.waitForURL(/\/workloads\//);
  assert.match(await page.locator('h1').innerText(), /^task-/);
  assert.ok(await page.locator('svg.lineage .node-link').count() >= 5, 'the workload graph has nodes');
  assert.ok(await page.locator('ol.timeline li.step').count() >= 5, 'the timeline has steps');
  await shot(page, 'workload');
  clean(page);
  await page.close();
});

test('the dashboard shows the demo: size, refusals, sparkline', async () => {
  const page = await open('/');
  const size = Number((await page.locator('#tree-size').innerText()).replace(/,/g, ''));
  assert.ok(size > 100, `tree size ${size}`);
  const body = await page.locator('body').innerText();
  for (const code of ['equivocation', 'sequence_gap', 'clock_skew', 'revoked_key', 'halted', 'key_expired', 'out_of_scope']) {
    assert.ok(body.includes(code), `rejection ${code} is listed`);
  }
  assert.ok(await page.locator('svg.spark rect.spark-bar').count() > 0, 'sparkline bars');
  clean(page);
  await page.close();
});

test('search finds an event by ID and a workload by name', async () => {
  const page = await open('/entries?kind=workload.start');
  const id = await page.locator('table.entries tbody tr').first().locator('.digest a').getAttribute('title');
  await page.fill('header input[name=q]', id);
  await page.press('header input[name=q]', 'Enter');
  await page.waitForURL(new RegExp(`/events/${id}$`));
  assert.match(await page.locator('.sub').first().innerText(), /Event ID/);
  await page.fill('header input[name=q]', 'no-such-workload-anywhere');
  await page.press('header input[name=q]', 'Enter');
  await page.waitForLoadState();
  assert.match(await page.locator('h1').innerText(), /Not found/);
  await page.close();
});

test('event -> parent -> Proof Viewer, verified in this browser', async () => {
  // A research sub-workload's first event: its parent is the spawn in the task.
  const page = await open('/entries?kind=workload.start&runtime=agent%2Fresearcher');
  await page.locator('table.entries tbody tr').first().locator('.digest a').click();
  await page.waitForURL(/\/events\/[0-9a-f]{64}$/);
  assert.ok(await page.locator('svg.lineage .node.focus').count() === 1, 'the event is outlined in its graph');
  assert.ok(await page.locator('svg.lineage .edge.cross').count() >= 1, 'the graph highlights a trust-domain crossing');
  const lanes = await page.locator('svg.lineage .lane').count();
  assert.ok(lanes >= 2, `the graph has ${lanes} workload lanes`);
  await shot(page, 'event');
  clean(page);

  // Go to the parent (the Parents table), then to its proof.
  await page.locator('section:has(h2:text("Parents")) table.entries tbody tr').first().locator('.digest a').click();
  await page.waitForURL(/\/events\/[0-9a-f]{64}$/);
  assert.match(await page.locator('.eyebrow .badge').first().innerText(), /workload\.spawn/);
  await page.locator('#proof-link').click();
  await page.waitForURL(/\/proofs\/inclusion\?index=\d+&tree_size=\d+/);
  await shot(page, 'proof');
  await page.locator('#verify-btn').click();
  const result = page.locator('#verify-result');
  await until('verification', async () => ['ok', 'fail'].includes(await result.getAttribute('data-status')), 20_000);
  assert.equal(await result.getAttribute('data-status'), 'ok', await page.locator('#verify-steps').innerText());
  const steps = await page.locator('#verify-steps li.ok').allInnerTexts();
  assert.ok(steps.some((s) => s.includes('Ed25519 signature over the checkpoint text is valid')), steps.join('\n'));
  assert.ok(steps.some((s) => s.includes("equals the checkpoint's root")));
  assert.ok(await page.locator('svg.merkle .mnode.root.ok').count() === 1, 'the root is marked verified');
  assert.match(await page.locator('#verified-payload').innerText(), /workload\.spawn/);
  await shot(page, 'proof-verified');
  clean(page);
  await page.close();
});

/** Opens an inclusion proof page, edits its proof data, verifies, returns the verdict. */
async function tampered(path, edit) {
  const page = await open(path);
  await page.evaluate(`(() => {
    const el = document.getElementById('proof-data');
    const d = JSON.parse(el.textContent);
    (${edit})(d);
    el.textContent = JSON.stringify(d);
  })()`);
  await page.locator('#verify-btn').click();
  const result = page.locator('#verify-result');
  await until('verification', async () => ['ok', 'fail'].includes(await result.getAttribute('data-status')), 20_000);
  const status = await result.getAttribute('data-status');
  const text = await page.locator('#verify-steps').innerText();
  return { page, status, text };
}

test('a tampered proof, entry or checkpoint fails in the browser', async () => {
  const log = await (await fetch(`${BASE}/v1/log`)).json();
  const path = `/proofs/inclusion?index=3&tree_size=${log.tree_size}`;
  const flip = (b64) => (b64[0] === 'A' ? 'B' : 'A') + b64.slice(1);
  globalThis.flip = flip;

  // A hash of the audit path.
  let r = await tampered(path, `(d) => { const h = d.proof[0]; d.proof[0] = (h[0] === 'A' ? 'B' : 'A') + h.slice(1); }`);
  assert.equal(r.status, 'fail', r.text);
  assert.match(r.text, /checkpoint has/);
  assert.ok(await r.page.locator('svg.merkle .mnode.bad').count() >= 1, 'the drawing marks the mismatch');
  await shot(r.page, 'proof-tampered');
  await r.page.close();

  // One byte of the entry.
  r = await tampered(path, `(d) => { const b = atob(d.entry); d.entry = btoa(b.slice(0, 120) + String.fromCharCode(b.charCodeAt(120) ^ 1) + b.slice(121)); }`);
  assert.equal(r.status, 'fail', r.text);
  await r.page.close();

  // The root in the checkpoint text: the signature no longer verifies.
  r = await tampered(path, `(d) => { const lines = d.checkpoint.split('\\n'); lines[2] = (lines[2][0] === 'A' ? 'B' : 'A') + lines[2].slice(1); d.checkpoint = lines.join('\\n'); }`);
  assert.equal(r.status, 'fail', r.text);
  assert.match(r.text, /INVALID signature/);
  await r.page.close();

  // Another log's key.
  r = await tampered(path, `(d) => { d.vkey = d.vkey.replace(/\\+[0-9a-f]{8}\\+/, '+00000000+'); }`);
  assert.equal(r.status, 'fail', r.text);
  await r.page.close();
});

test('the consistency viewer verifies, and catches a forged checkpoint', async () => {
  const page = await open('/checkpoints');
  await page.locator('a:text("consistency → latest")').nth(3).click();
  await page.waitForURL(/\/proofs\/consistency\?first=\d+&second=\d+/);
  await page.locator('#verify-btn').click();
  const result = page.locator('#verify-result');
  await until('verification', async () => ['ok', 'fail'].includes(await result.getAttribute('data-status')), 20_000);
  assert.equal(await result.getAttribute('data-status'), 'ok', await page.locator('#verify-steps').innerText());
  await shot(page, 'consistency');
  clean(page);
  const url = page.url().slice(BASE.length);
  await page.close();

  const r = await tampered(url, `(d) => { if (d.proof.length) { const h = d.proof[d.proof.length - 1]; d.proof[d.proof.length - 1] = (h[0] === 'A' ? 'B' : 'A') + h.slice(1); } else { d.first = d.first + 1; } }`);
  assert.equal(r.status, 'fail', r.text);
  await r.page.close();
});

test('friendly error pages', async () => {
  const page = await open();
  let resp = await page.goto(`${BASE}/events/${'ab'.repeat(32)}`);
  assert.equal(resp.status(), 404);
  assert.match(await page.locator('h1').innerText(), /Not found/);
  resp = await page.goto(`${BASE}/proofs/inclusion?index=zero`);
  assert.equal(resp.status(), 400);
  assert.match(await page.locator('.reason').innerText(), /must be a whole number/);
  await shot(page, 'error-400');
  await page.close();
});

test('dark theme and a phone-sized screen', async () => {
  const dark = await browser.newContext({ viewport: { width: 1360, height: 900 }, colorScheme: 'dark' });
  const page = await open('/', dark);
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.notEqual(bg, 'rgb(246, 247, 249)', 'the dark palette applies');
  await shot(page, 'dashboard-dark');
  await dark.close();

  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: 'light', isMobile: true, hasTouch: true });
  const p = await open('/entries?kind=workload.start&runtime=tools%2Fsandbox', phone);
  await p.locator('table.entries tbody tr').first().locator('.digest a').click();
  await p.waitForURL(/\/events\//);
  const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `no sideways scrolling of the page (${overflow}px)`);
  await shot(p, 'event-phone');
  await phone.close();
});

test('copy buttons put the full hash on the clipboard', async () => {
  const ctx = await browser.newContext({ viewport: { width: 1360, height: 900 }, permissions: ['clipboard-read', 'clipboard-write'] });
  const page = await open('/entries', ctx);
  const button = page.locator('table.entries .digest button.copy').first();
  const full = await button.getAttribute('data-copy');
  assert.match(full, /^[0-9a-f]{64}$/);
  await button.click();
  await until('copied', async () => (await button.getAttribute('class')).includes('copied'), 5_000);
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), full);
  await ctx.close();
});

/** Signs a governance statement with the demo's development authority key and posts it. */
async function govern(statement) {
  const dir = process.env.LINEAGE_DATA_DIR;
  assert.ok(dir, 'LINEAGE_DATA_DIR names the demo data directory');
  const seed = Buffer.from(readFileSync(`${dir}/authority.key`, 'utf8').trim(), 'base64');
  assert.equal(seed.length, 32, 'an Ed25519 seed');
  const key = createPrivateKey({
    key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]),
    format: 'der',
    type: 'pkcs8',
  });
  const raw = createPublicKey(key).export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64');
  const log = await (await fetch(`${BASE}/v1/log`)).json();
  const authority = log.authority_keys.find((k) => k.public_key === raw);
  assert.ok(authority, 'the key file holds an authority key of this log');
  const type = 'application/vnd.lineage.grant.v1+json';
  const payload = Buffer.from(JSON.stringify(statement));
  const pae = Buffer.concat([Buffer.from(`DSSEv1 ${type.length} ${type} ${payload.length} `), payload]);
  const envelope = {
    payloadType: type,
    payload: payload.toString('base64'),
    signatures: [{ keyid: authority.key_id, sig: sign(null, pae, key).toString('base64') }],
  };
  const resp = await fetch(`${BASE}/v1/entries`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(envelope),
  });
  const body = await resp.json();
  assert.ok(resp.ok, `${statement.action} accepted: ${resp.status} ${JSON.stringify(body)}`);
  return body;
}

test('a halted workload shows its banner, whose link leads to the halt', async () => {
  // A sandbox workload of the initial burst (finished: the demo sends it nothing more).
  const list = await open('/entries?kind=workload.start&runtime=tools%2Fsandbox');
  const workload = await list.locator('table.entries tbody tr').last().locator('td:nth-child(3) a').innerText();
  await list.close();
  const before = await open(`/workloads/${encodeURIComponent(workload)}`);
  // Open, or closed if the demo already ended it with workload.end.
  const stateBefore = await before.locator('#workload-state').innerText();
  assert.ok(['open', 'closed'].includes(stateBefore), stateBefore);
  await before.close();
  const now = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const reason = 'browser test: stopped on purpose';
  const halt = await govern({ action: 'halt', target: { workload }, reason, at: now() });

  const page = await open(`/workloads/${encodeURIComponent(workload)}`);
  assert.equal(await page.locator('#workload-state').innerText(), 'halted');
  const banner = page.locator('#halt-banner');
  assert.ok(await banner.isVisible(), 'the banner is shown');
  const text = await banner.innerText();
  assert.ok(text.includes(`at index ${halt.index}: ${reason}`), text);
  assert.ok(text.includes('this workload itself'), text);
  await shot(page, 'workload-halted', false);
  await page.locator('#halt-link').click();
  await page.waitForURL(new RegExp(`/events/${halt.event_id}$`));
  assert.match(await page.locator('h1').innerText(), /halt workload/);
  // The workload and whatever derives from it (a task merging its result).
  assert.ok(Number(await page.locator('#halt-count').innerText()) >= 1);
  assert.ok((await page.locator('#halt-members a').allInnerTexts()).includes(workload));
  await shot(page, 'halt');
  clean(page);
  await page.close();

  // Lifted again: the banner is gone, and the state is what it was.
  await govern({ action: 'resume', target: { workload }, at: now() });
  const after = await open(`/workloads/${encodeURIComponent(workload)}`);
  assert.equal(await after.locator('#halt-banner').count(), 0);
  assert.equal(await after.locator('#workload-state').innerText(), stateBefore);
  clean(after);
  await after.close();
});
