// The Governance Console in a real browser, against `lineage demo` (started
// by ../run.sh, which passes LINEAGE_URL and the demo's data directory in
// LINEAGE_DATA_DIR, where its development authority key file is). The key
// file is loaded into the page as an operator would, statements are signed
// in the page and posted by it, and every request the page sends is
// inspected for the key's bytes.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, until } from '../support.js';

const BASE = process.env.LINEAGE_URL;
const SHOTS = new URL('../screenshots/', import.meta.url).pathname;

let browser;
let context;
const requests = [];

before(async () => {
  assert.ok(BASE && BASE.startsWith('http://127.0.0.1:'), 'LINEAGE_URL is a loopback URL');
  await until('the demo data', async () => (await (await fetch(`${BASE}/metrics`)).text()).includes('code="key_expired"'));
  ({ browser, context } = await launch());
  // Every request any page of this context sends: URL, headers, body.
  context.on('request', (r) => {
    requests.push((async () => ({ url: r.url(), headers: await r.allHeaders(), body: r.postDataBuffer() }))());
  });
});

after(async () => {
  await browser?.close();
});

async function open(path) {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.errors = errors;
  const resp = await page.goto(BASE + path);
  assert.equal(resp.status(), 200, `${path} answers 200`);
  return page;
}

function clean(page) {
  assert.deepEqual(page.errors, [], 'no script or console errors');
}

const keyFile = () => `${process.env.LINEAGE_DATA_DIR}/authority.key`;
const workload = async (w) => (await fetch(`${BASE}/v1/workloads/${encodeURIComponent(w)}`)).json();

/** A planner task the demo is running now (open, a few events in). */
async function runningTask() {
  return until('a running demo task', async () => {
    const page = await open('/entries?kind=workload.start&runtime=agent%2Fplanner');
    const names = await page.locator('table.entries tbody tr td:nth-child(3) a').allInnerTexts();
    await page.close();
    for (const w of names.slice(0, 3)) {
      const info = await workload(w);
      if (info.state === 'open' && info.head.seq <= 2) return w;
    }
    return null;
  }, 60_000);
}

/** Fills the form for `statement` (halt/resume/grant), signs and posts, waits for the verified receipt. */
async function act(page, fill) {
  await fill();
  await page.locator('#sign-post').click();
  const result = page.locator('#verify-result');
  await until('the receipt verified', async () => {
    const failed = (await page.locator('#act-result').getAttribute('data-status')) === 'fail';
    if (failed) throw new Error(await page.locator('#act-result').innerText());
    return ['ok', 'fail'].includes(await result.getAttribute('data-status'));
  }, 20_000);
  assert.equal(await result.getAttribute('data-status'), 'ok', await page.locator('#verify-steps').innerText());
  const steps = await page.locator('#verify-steps li.ok').allInnerTexts();
  assert.ok(steps.some((s) => s.includes('Ed25519 signature over the checkpoint text is valid')), steps.join('\n'));
  assert.ok(steps.some((s) => s.includes("equals the checkpoint's root")), steps.join('\n'));
  const receipt = JSON.parse(await page.locator('#receipt-json').innerText());
  assert.match(await page.locator('#act-result').innerText(), new RegExp(`Appended at index ${receipt.index}`));
  return receipt;
}

async function loadKey(page, path) {
  // Wait for this file's verdict, not the status already shown ("No key
  // loaded.", or the previous file's).
  const status = page.locator('#key-status');
  await status.evaluate((el) => { el.textContent = ''; });
  await page.locator('#f-key-file').setInputFiles(path);
  await until('the key loaded', async () => /loaded|✗/.test(await status.innerText()), 10_000);
  return status.innerText();
}

test('a key that is not an authority of this ledger is refused in the page', async () => {
  const page = await open('/governance');
  const dir = mkdtempSync(`${tmpdir()}/lineage-console-`);
  const other = `${dir}/other.key`;
  const jwk = generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' });
  writeFileSync(other, Buffer.from(jwk.d, 'base64url').toString('base64') + '\n');
  assert.match(await loadKey(page, other), /not an authority key of this ledger/);
  assert.ok(await page.locator('#sign-post').isDisabled());
  writeFileSync(`${dir}/junk.key`, 'not a key\n');
  assert.match(await loadKey(page, `${dir}/junk.key`), /not a key file/);
  clean(page);
  await page.close();
});

test('halt a running demo task from the console, see it verified, drawn and refused; resume it', async () => {
  const task = await runningTask();
  const page = await open('/governance');
  assert.match(await page.locator('h1').innerText(), /Who may execute what/);
  assert.match(await page.locator('#act').innerText(), /a compromised server could serve a page that steals a key/);
  assert.match(await loadKey(page, keyFile()), /Authority key [0-9a-f]{16}… loaded/);

  const reason = 'console test: stop this task';
  const halt = await act(page, async () => {
    await page.locator('#f-action').selectOption('halt');
    await page.locator('#f-target-kind').selectOption('workload');
    await page.locator('#f-target').fill(task);
    await page.locator('#f-reason').fill(reason);
  });
  const payload = JSON.parse(await page.locator('#payload-json').innerText());
  assert.deepEqual(payload.target, { workload: task });
  assert.equal(payload.reason, reason);
  const cli = await page.locator('#cli-command').innerText();
  assert.ok(cli.startsWith(`lineage halt --authority-key AUTHORITY.key --workload ${task} --reason 'console test: stop this task' --server ${BASE}`), cli);
  assert.match(await page.locator('#verified-payload').innerText(), new RegExp(`"action":"halt"`));
  await page.screenshot({ path: `${SHOTS}governance-act.png`, fullPage: true });

  // The ledger holds it: the task is halted, and the demo's next event of it is refused.
  assert.equal((await workload(task)).state, 'halted');
  // The task's next step may be its own event (shown on its page) or, if it
  // had spawned its research sub-workload by then, an event of that
  // sub-workload or of its sandbox run (any of them derives from the halted
  // task; a sub-workload refused at its first event has no page, so the
  // dashboard's list of refusals is read). Each is refused `halted`, and the
  // demo's task stops at its first refusal.
  await until('the demo refused the next event of the task\'s lineage', async () => {
    const p = await open(`/workloads/${encodeURIComponent(task)}`);
    const codes = await p.locator('table.list tr.refused code').allInnerTexts();
    await p.close();
    if (codes.includes('halted')) return true;
    const d = await open('/');
    const latest = await d.locator('ul.refusals li').allInnerTexts();
    await d.close();
    return latest.some((t) => t.startsWith('halted') && (t.includes(`${task} seq `) || t.includes(`${task}/research`)));
  }, 30_000);

  // The console shows the halt, and draws what it stops.
  await page.locator('#after-link').click();
  await page.waitForURL(/\/governance\?halt=\d+#subtree$/);
  const row = page.locator(`#halt-${halt.index}`);
  assert.ok(await row.isVisible());
  assert.match(await row.innerText(), new RegExp(reason));
  assert.ok(Number(await page.locator('#subtree-total').innerText()) >= 1);
  assert.ok((await page.locator('#subtree-members a').allInnerTexts()).includes(task));
  assert.ok(await page.locator('#subtree svg.lineage .node-link').count() >= 1, 'the stopped subtree is drawn');
  await page.screenshot({ path: `${SHOTS}governance-subtree.png`, fullPage: false });
  clean(page);
  // The console at a glance, for the README.
  const glance = await open(`/governance?halt=${halt.index}`);
  await glance.screenshot({ path: `${SHOTS}governance.png`, fullPage: false });
  clean(glance);
  await glance.close();

  // The key did not survive the navigation (it was never stored): load it
  // again, and resume the task from this page.
  assert.equal(await page.locator('#key-status').innerText(), 'No key loaded.');
  assert.ok(await page.locator('#sign-post').isDisabled());
  await loadKey(page, keyFile());
  await act(page, async () => {
    await page.locator('#f-action').selectOption('resume');
    await page.locator('#f-target-kind').selectOption('workload');
    await page.locator('#f-target').fill(task);
  });
  assert.notEqual((await workload(task)).state, 'halted');
  // As of the halt's index, the halt is active; now it is not.
  const past = await open(`/governance?as_of=${halt.index}`);
  assert.ok(await past.locator(`#halt-${halt.index}`).isVisible());
  await past.close();
  const nowPage = await open('/governance');
  assert.equal(await nowPage.locator(`#halt-${halt.index}`).count(), 0);
  await nowPage.close();
  clean(page);
  await page.close();
});

test('a key granted with a short window shows as expired once it passes', async () => {
  const page = await open('/governance');
  await loadKey(page, keyFile());
  const pub = generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' });
  const publicKey = Buffer.from(pub.x, 'base64url').toString('base64');
  const until3 = new Date(Date.now() + 3000).toISOString().replace(/\.\d+Z$/, 'Z');
  const runtime = 'console/short-lived';
  await act(page, async () => {
    await page.locator('#f-action').selectOption('grant');
    await page.locator('#f-runtime').fill(runtime);
    await page.locator('#f-public-key').fill(publicKey);
    await page.locator('#f-not-after').fill(until3);
    await page.locator('#f-kinds').fill('tool.*, workload.*');
  });
  const cli = await page.locator('#cli-command').innerText();
  assert.ok(cli.includes(`lineage grant --authority-key AUTHORITY.key --runtime console/short-lived --public-key ${publicKey} --not-after ${until3} --scope-kinds 'tool.*,workload.*'`), cli);
  const state = async () => {
    const p = await open('/governance');
    const text = await p.locator('[id="rt-console%2Fshort-lived"] .key-state').innerText();
    await p.close();
    return text;
  };
  const first = await state();
  assert.ok(['active', 'expired'].includes(first), first);
  await until('the key expired', async () => (await state()) === 'expired', 15_000);
  clean(page);
  await page.close();
});

test('the key file\'s bytes never appear in any request the pages sent, and nothing is stored', async () => {
  const text = readFileSync(keyFile(), 'utf8');
  const seed = Buffer.from(text.trim(), 'base64');
  assert.equal(seed.length, 32);
  const forms = [
    text.trim(),
    seed.toString('hex'),
    seed.toString('base64url'),
    encodeURIComponent(text.trim()),
  ];
  const sent = await Promise.all(requests);
  assert.ok(sent.some((r) => r.url.endsWith('/v1/entries') && r.body), 'the page posted envelopes');
  for (const r of sent) {
    const haystacks = [r.url, JSON.stringify(r.headers), r.body ? r.body.toString('latin1') : ''];
    for (const h of haystacks) {
      for (const f of forms) assert.ok(!h.includes(f), `a form of the key appears in a request to ${r.url}`);
      assert.ok(!h.includes(seed.toString('latin1')), `the raw key bytes appear in a request to ${r.url}`);
    }
    if (r.body) assert.ok(!r.body.includes(seed), `the raw key bytes appear in the body sent to ${r.url}`);
  }
  const page = await open('/governance');
  assert.equal(await page.evaluate(() => localStorage.length + sessionStorage.length), 0, 'no web storage');
  assert.equal(await page.evaluate(() => document.cookie), '', 'no cookie');
  await page.close();
});
