// Witnessing in a real browser: a second ledger (`lineage serve`, from the
// LINEAGE_BIN binary) with `--witness-policy` naming three local witnesses
// and a 2-of-3 quorum. The witnesses are small C2SP tlog-witness fakes in
// this file: they keep the size they last cosigned (answering 409 with it
// when the log's `old` differs) and cosign with node:crypto Ed25519 exactly
// per c2sp.org/tlog-cosignature (they do not check the log's signature or
// the consistency proof: the log under test is honest). So the cosignature
// lines come from an implementation independent of the ledger's, the log
// verifies them before it publishes, and the Proof Viewer checks them again
// with WebCrypto; a tampered line fails there. Then two witnesses stop: the
// health page shows the unmet quorum without the degraded banner. Loopback
// only; everything started here is stopped here.
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, until } from '../support.js';

const BIN = process.env.LINEAGE_BIN;
const SHOTS = new URL('../screenshots/', import.meta.url).pathname;
const ORIGIN = 'witnessed.test/log';

let browser;
let context;
let dir;
let ledger;
const witnesses = [];

const keyId = (name, type, pub) => createHash('sha256')
  .update(Buffer.concat([Buffer.from(name), Buffer.from([0x0a, type]), pub])).digest().subarray(0, 4);
const vkey = (name, type, pub) => `${name}+${keyId(name, type, pub).toString('hex')}+${Buffer.concat([Buffer.from([type]), pub]).toString('base64')}`;

/** A C2SP tlog-witness fake on a loopback port (see the file's comment). */
async function witness(name) {
  const { privateKey } = generateKeyPairSync('ed25519');
  const pub = Buffer.from(privateKey.export({ format: 'jwk' }).x, 'base64url');
  const keyName = `${name}.test/witness`;
  const id = keyId(keyName, 0x04, pub);
  let held = 0;
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/add-checkpoint') { res.writeHead(404).end(); return; }
      const body = Buffer.concat(chunks).toString();
      const blank = body.indexOf('\n\n');
      const old = /^old (\d+)\n/.exec(body);
      const note = body.slice(blank + 2);
      const end = note.indexOf('\n\n');
      if (blank < 0 || !old || end < 0) { res.writeHead(400).end('malformed\n'); return; }
      if (Number(old[1]) !== held) {
        res.writeHead(409, { 'content-type': 'text/x.tlog.size' }).end(`${held}\n`);
        return;
      }
      const text = note.slice(0, end + 1);
      held = Number(text.split('\n')[1]);
      const ts = BigInt(Math.floor(Date.now() / 1000));
      const t = Buffer.alloc(8);
      t.writeBigUInt64BE(ts);
      const sig = sign(null, Buffer.concat([Buffer.from(`cosignature/v1\ntime ${ts}\n`), Buffer.from(text)]), privateKey);
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' })
        .end(`\u2014 ${keyName} ${Buffer.concat([id, t, sig]).toString('base64')}\n`);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const stop = () => new Promise((r) => { server.close(r); server.closeAllConnections(); });
  return { name, keyName, vkey: vkey(keyName, 0x04, pub), url: `http://127.0.0.1:${server.address().port}`, stop };
}

/** Signs something into the log (a grant, with the ledger's development authority key). */
function grant(runtime) {
  const { publicKey } = generateKeyPairSync('ed25519');
  const pk = Buffer.from(publicKey.export({ format: 'jwk' }).x, 'base64url').toString('base64');
  execFileSync(BIN, ['grant', '--authority-key', join(dir, 'ledger', 'authority.key'), '--runtime', runtime,
    '--public-key', pk, '--server', ledger.url], { stdio: 'pipe' });
}

before(async () => {
  assert.ok(BIN, 'LINEAGE_BIN names the lineage binary');
  dir = mkdtempSync(join(tmpdir(), 'lineage-witnessed-'));
  // The log key is made here, so that the policy can name it before the
  // ledger starts.
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  writeFileSync(join(dir, 'log.key'), `${Buffer.from(jwk.d, 'base64url').toString('base64')}\n`, { mode: 0o600 });
  const logVkey = vkey(ORIGIN, 0x01, Buffer.from(jwk.x, 'base64url'));
  for (const n of ['w1', 'w2', 'w3']) witnesses.push(await witness(n));
  writeFileSync(join(dir, 'policy'), [
    `log ${logVkey}`,
    ...witnesses.map((w) => `witness ${w.name} ${w.vkey} ${w.url}`),
    'group main 2 w1 w2 w3',
    'quorum main',
    '',
  ].join('\n'));
  const child = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', join(dir, 'ledger'),
    '--log-key', join(dir, 'log.key'), '--origin', ORIGIN, '--witness-policy', join(dir, 'policy'),
    '--witness-interval-ms', '200', '--witness-timeout-ms', '2000'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((r) => child.on('exit', r));
  ledger = {
    stop: async () => { if (child.exitCode === null) { child.kill('SIGTERM'); await exited; } },
    err: () => err,
  };
  ledger.url = await until('the witnessed ledger to listen', async () => {
    if (child.exitCode !== null) throw new Error(`lineage serve exited: ${err}`);
    return /listening on (http:\/\/\S+)/.exec(out)?.[1];
  }, 30_000);
  ({ browser, context } = await launch());
});

after(async () => {
  await browser?.close();
  await ledger?.stop();
  for (const w of witnesses) await w.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function open(path) {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.errors = errors;
  const resp = await page.goto(ledger.url + path);
  assert.equal(resp.status(), 200, `${path} answers 200`);
  return page;
}

async function verify(page) {
  await page.locator('#verify-btn').click();
  const result = page.locator('#verify-result');
  await until('verification', async () => ['ok', 'fail'].includes(await result.getAttribute('data-status')), 20_000);
  return { status: await result.getAttribute('data-status'), text: await page.locator('#verify-steps').innerText() };
}

test('the Proof Viewer checks every witness cosignature in the browser, and a tampered one fails', async () => {
  grant('witnessed/a');
  // A round after the grant publishes a witnessed checkpoint that covers it
  // (the first round may already have witnessed the empty tree: wait for
  // size >= 1, the checkpoint's second line).
  await until('a witnessed checkpoint covering the grant', async () => {
    const r = await fetch(`${ledger.url}/checkpoint`);
    return r.status === 200 && Number((await r.text()).split('\n')[1]) >= 1;
  }, 30_000);
  const note = await (await fetch(`${ledger.url}/checkpoint`)).text();
  for (const w of witnesses) assert.ok(note.includes(`\u2014 ${w.keyName} `), `cosigned by ${w.name}:\n${note}`);

  const page = await open('/proofs/inclusion?index=0&witnessed=true');
  assert.equal(await page.locator('.cosigs [data-quorum="met"]').count(), 1, 'the page shows the quorum met');
  const { status, text } = await verify(page);
  assert.equal(status, 'ok', text);
  for (const w of witnesses) {
    assert.match(text, new RegExp(`checkpoint: witness ${w.name}: cosignature/v1 over the checkpoint text is valid, cosigned at \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ`), text);
  }
  assert.match(text, /the witness policy's quorum \(main\) is met by 3 valid cosignature\(s\)/);
  await page.screenshot({ path: `${SHOTS}proof-witnessed.png`, fullPage: true });
  assert.deepEqual(page.errors, [], 'no script or console errors');

  // One byte of w2's Ed25519 signature changed: that witness fails.
  await page.evaluate(`(() => {
    const el = document.getElementById('proof-data');
    const d = JSON.parse(el.textContent);
    d.checkpoint = d.checkpoint.split('\\n').map((line) => {
      if (!line.startsWith('\\u2014 w2.test/witness ')) return line;
      const i = line.lastIndexOf(' ') + 1;
      const raw = Uint8Array.from(atob(line.slice(i)), (c) => c.charCodeAt(0));
      raw[40] ^= 1;
      return line.slice(0, i) + btoa(String.fromCharCode(...raw));
    }).join('\\n');
    el.textContent = JSON.stringify(d);
  })()`);
  const bad = await verify(page);
  assert.equal(bad.status, 'fail', bad.text);
  const failed = await page.locator('#verify-steps li.bad').allInnerTexts();
  assert.ok(failed.some((l) => l.startsWith('checkpoint: witness w2: cosignature/v1') && l.includes('INVALID cosignature')), failed.join('\n'));
  const passed = await page.locator('#verify-steps li.ok').allInnerTexts();
  assert.ok(passed.some((l) => l.includes('Ed25519 signature over the checkpoint text is valid')), 'the log signature still holds');
  assert.ok(passed.some((l) => l.includes('witness w1: cosignature/v1')), 'w1 still holds');
  await page.close();

  // The checkpoint history shows the cosignatures too.
  const cps = await open('/checkpoints');
  for (const w of witnesses) assert.equal(await cps.locator(`.cosig-list li[data-witness="${w.name}"]`).first().isVisible(), true);
  await cps.close();
});

test('two witnesses down: the health page shows the unmet quorum, not a degraded ledger', async () => {
  const page = await open('/health');
  assert.equal(await page.locator('#witnesses').isVisible(), true);
  assert.equal(await page.locator('#quorum-alert').isVisible(), false);
  assert.equal(await page.locator('#witness-table tr[data-state="up"]').count(), 3);
  await witnesses[1].stop();
  await witnesses[2].stop();
  grant('witnessed/b');
  // The page polls /health.json: the alert appears without a reload.
  await until('the unmet quorum on the page', async () => page.locator('#quorum-alert').isVisible(), 30_000, 200);
  assert.match(await page.locator('#quorum-alert').innerText(), /main has 1 of 2/);
  assert.equal(await page.locator('#witness-table tr[data-state="failing"]').count(), 2);
  assert.equal(await page.locator('#health-banner').isVisible(), false, 'no degraded banner');
  assert.match(await page.locator('#health-state').innerText(), /Healthy/);
  const ready = await fetch(`${ledger.url}/readyz`);
  assert.equal(ready.status, 200, 'ingest is unaffected');
  assert.match(await ready.text(), /witness_quorum_unmet/);
  await page.screenshot({ path: `${SHOTS}health-witnesses.png`, fullPage: true });
  assert.deepEqual(page.errors, [], 'no script or console errors');
  await page.close();
});
