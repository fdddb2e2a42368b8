// Lineage Proof Viewer: verifies an RFC 6962 inclusion or consistency proof
// and the C2SP checkpoint signatures in the browser, with WebCrypto only.
//
// Inputs are read from <script id="proof-data" type="application/json"> when
// the button is pressed (so what is verified is what the page holds now).
// Inclusion: RFC 9162 §2.1.3.2. Consistency: RFC 9162 §2.1.4.2.
// Signed notes: c2sp.org/signed-note (Ed25519, key ID = SHA-256(name ‖ 0x0A ‖
// 0x01 ‖ key)[:4]). Checkpoints: c2sp.org/tlog-checkpoint. Witness
// cosignatures: c2sp.org/tlog-cosignature (cosignature/v1, key type 0x04,
// key ID = SHA-256(name ‖ 0x0A ‖ 0x04 ‖ key)[:4]; a line decodes to the key
// ID then 72 bytes: the big-endian timestamp (8) and the Ed25519 signature
// (64) over "cosignature/v1\ntime <t>\n" ‖ text),
// counted up to the quorum of the server's c2sp.org/tlog-policy.
'use strict';
(() => {
  const enc = new TextEncoder();
  const $ = (s) => document.querySelector(s);

  function b64(s) {
    if (typeof s !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) {
      throw new Error('not standard base64: ' + String(s).slice(0, 60));
    }
    return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  }
  const toB64 = (u) => btoa(String.fromCharCode(...u));
  const hex = (u) => Array.from(u, (b) => b.toString(16).padStart(2, '0')).join('');
  const short = (s) => (s.length > 16 ? s.slice(0, 8) + '…' + s.slice(-4) : s);
  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) { out.set(p, o); o += p.length; }
    return out;
  }
  const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  async function sha256(u) { return new Uint8Array(await crypto.subtle.digest('SHA-256', u)); }
  const leafHash = (entry) => sha256(concat(Uint8Array.of(0), entry));
  const nodeHash = (l, r) => sha256(concat(Uint8Array.of(1), l, r));

  class Fail extends Error {}

  // ---- Signed notes and checkpoints -------------------------------------------------

  function splitNote(note) {
    const i = note.lastIndexOf('\n\n');
    if (i < 0 || !note.endsWith('\n')) throw new Fail('the note has no signature block');
    return { text: note.slice(0, i + 1), sigs: note.slice(i + 2, -1).split('\n') };
  }

  function parseCheckpoint(text) {
    const lines = text.split('\n');
    if (lines.length < 4 || lines[lines.length - 1] !== '') throw new Fail('the checkpoint has fewer than three lines');
    const [origin, size, root] = lines;
    if (!/^(0|[1-9][0-9]*)$/.test(size)) throw new Fail('the checkpoint size is not a decimal number');
    const r = b64(root);
    if (r.length !== 32) throw new Fail('the checkpoint root is not 32 bytes');
    return { origin, size: BigInt(size), root: r };
  }

  function parseVkey(vkey) {
    // name+hexid+base64: the name has no '+', the base64 key may.
    const i = vkey.indexOf('+');
    const j = vkey.indexOf('+', i + 1);
    if (i <= 0 || j < 0) throw new Fail('the log key is not name+id+key');
    const [name, id, key] = [vkey.slice(0, i), vkey.slice(i + 1, j), vkey.slice(j + 1)];
    if (!/^[0-9a-f]{8}$/.test(id)) throw new Fail('the log key ID is not 8 hex digits');
    const raw = b64(key);
    if (raw.length !== 33 || raw[0] !== 1) throw new Fail('the log key is not an Ed25519 note key');
    return { name, id, pub: raw.slice(1) };
  }

  function parseCosignerVkey(vkey) {
    const i = vkey.indexOf('+');
    const j = vkey.indexOf('+', i + 1);
    if (i <= 0 || j < 0) throw new Fail('a witness key is not name+id+key');
    const [name, id, key] = [vkey.slice(0, i), vkey.slice(i + 1, j), vkey.slice(j + 1)];
    if (!/^[0-9a-f]{8}$/.test(id)) throw new Fail('a witness key ID is not 8 hex digits');
    const raw = b64(key);
    if (raw.length !== 33 || raw[0] !== 4) throw new Fail(`the key of witness ${name} is not a cosignature/v1 (0x04) Ed25519 key`);
    return { name, id, pub: raw.slice(1) };
  }

  async function importEd25519(pub) {
    try {
      return await crypto.subtle.importKey('raw', pub, { name: 'Ed25519' }, false, ['verify']);
    } catch (e) {
      throw new Fail(`this browser cannot check Ed25519 signatures with WebCrypto (${e.name}); nothing was verified for the signature`);
    }
  }

  const utc = (secs) => {
    const ms = Number(secs) * 1000;
    return Number.isSafeInteger(ms) && ms <= 8.64e15 ? new Date(ms).toISOString().replace('.000Z', 'Z') : `${secs} (out of range)`;
  };

  // Is the quorum met by the witnesses in `signed` (a Set of policy names)?
  function quorumMet(policy, signed) {
    if (!policy.quorum) return true; // quorum none
    const groups = new Map(policy.groups.map((g) => [g.name, g]));
    const seen = new Set();
    const met = ([kind, name]) => {
      if (kind === 'witness') return signed.has(name);
      const g = groups.get(name);
      if (!g || seen.has(name)) return false;
      seen.add(name);
      const n = g.members.filter(met).length;
      seen.delete(name);
      return n >= g.required;
    };
    return met(policy.quorum);
  }

  // Checks every witness's cosignature line on a checkpoint note, one report
  // line per witness of the policy, then the quorum.
  async function checkCosignatures(label, note, policy, witnessed, u) {
    const { text, sigs } = splitNote(note);
    const signed = new Set();
    let any = false;
    for (const w of policy.witnesses) {
      const key = parseCosignerVkey(w.vkey);
      const keyId = (await sha256(concat(enc.encode(key.name), Uint8Array.of(0x0a, 0x04), key.pub))).slice(0, 4);
      const who = `${label}: witness ${w.name}`;
      if (!u.line(hex(keyId) === key.id, `${who} key ID ${key.id} = SHA-256(name ‖ 0x0A ‖ 0x04 ‖ key)[:4]`, `computed ${hex(keyId)}`)) continue;
      const prefix = '\u2014 ' + key.name + ' ';
      const lines = [];
      for (const line of sigs) {
        if (!line.startsWith(prefix)) continue;
        let raw;
        try { raw = b64(line.slice(prefix.length)); } catch (_) { continue; }
        if (raw.length >= 4 && equal(raw.slice(0, 4), keyId)) lines.push(raw);
      }
      if (lines.length === 0) {
        u.info(`${who}: no cosignature on this checkpoint`);
        continue;
      }
      any = true;
      const k = await importEd25519(key.pub);
      let ok = true;
      let why = '';
      let latest = null;
      for (const raw of lines) {
        if (raw.length !== 4 + 72) { ok = false; why = `the line has ${raw.length - 4} bytes after its key ID, not 72`; break; }
        const ts = new DataView(raw.buffer, raw.byteOffset + 4, 8).getBigUint64(0);
        const msg = concat(enc.encode(`cosignature/v1\ntime ${ts}\n`), enc.encode(text));
        if (!(await crypto.subtle.verify({ name: 'Ed25519' }, k, raw.slice(12), msg))) {
          ok = false; why = `INVALID cosignature (timestamp ${utc(ts)})`; break;
        }
        if (latest === null || ts > latest) latest = ts;
      }
      const at = latest === null ? '' : `, cosigned at ${utc(latest)}`;
      if (u.line(ok, `${who}: cosignature/v1 over the checkpoint text is valid${at}`, why)) signed.add(w.name);
    }
    if (!any && !witnessed) {
      u.info(`${label}: signed by the log key only (no witnessing round published this size)`);
      return;
    }
    const q = policy.quorum ? policy.quorum[1] : 'none';
    u.line(quorumMet(policy, signed), `${label}: the witness policy's quorum (${q}) is met by ${signed.size} valid cosignature(s)`, 'the quorum is NOT met');
  }

  // Checks one signed checkpoint; reports each step; returns the parsed checkpoint.
  async function checkNote(label, note, vkey, origin, size, report) {
    const { text, sigs } = splitNote(note);
    const cp = parseCheckpoint(text);
    report(cp.origin === origin, `${label}: origin is “${origin}”`, `got “${cp.origin}”`);
    report(cp.size === size, `${label}: tree size is ${size}`, `got ${cp.size}`);
    const key = parseVkey(vkey);
    const keyId = (await sha256(concat(enc.encode(key.name), Uint8Array.of(0x0a, 0x01), key.pub))).slice(0, 4);
    report(hex(keyId) === key.id, `${label}: log key ID ${key.id} = SHA-256(name ‖ 0x0A ‖ 0x01 ‖ key)[:4]`, `computed ${hex(keyId)}`);
    const prefix = '\u2014 ' + key.name + ' ';
    let sig = null;
    for (const line of sigs) {
      if (!line.startsWith(prefix)) continue;
      const raw = b64(line.slice(prefix.length));
      if (raw.length === 68 && equal(raw.slice(0, 4), keyId)) { sig = raw.slice(4); break; }
    }
    if (!report(sig !== null, `${label}: a signature line by ${key.name}`, 'none found')) return cp;
    const k = await importEd25519(key.pub);
    const ok = await crypto.subtle.verify({ name: 'Ed25519' }, k, sig, enc.encode(text));
    report(ok, `${label}: Ed25519 signature over the checkpoint text is valid`, 'INVALID signature');
    return cp;
  }

  // ---- Proofs (RFC 9162) -------------------------------------------------------------

  async function inclusionRoot(index, size, leaf, proof, onStep) {
    if (index >= size) throw new Fail(`index ${index} is not below tree size ${size}`);
    let fn = index;
    let sn = size - 1n;
    let r = leaf;
    for (let k = 0; k < proof.length; k++) {
      if (sn === 0n) throw new Fail(`the audit path is too long (${proof.length} hashes)`);
      const p = proof[k];
      const left = (fn & 1n) === 1n || fn === sn;
      if (left) {
        r = await nodeHash(p, r);
        if ((fn & 1n) === 0n) while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
      } else {
        r = await nodeHash(r, p);
      }
      fn >>= 1n; sn >>= 1n;
      onStep(k, left, r);
    }
    if (sn !== 0n) throw new Fail(`the audit path is too short (${proof.length} hashes)`);
    return r;
  }

  async function consistencyRoots(first, second, firstRoot, proof, onStep) {
    if (first > second) throw new Fail('the first tree is larger than the second');
    if (first === 0n || first === second) {
      if (proof.length !== 0) throw new Fail('the proof must be empty for these sizes');
      return null;
    }
    let seed;
    let rest;
    if ((first & (first - 1n)) === 0n) { seed = firstRoot; rest = proof; } else {
      if (proof.length === 0) throw new Fail('the proof is empty');
      seed = proof[0]; rest = proof.slice(1);
    }
    let fn = first - 1n;
    let sn = second - 1n;
    while ((fn & 1n) === 1n) { fn >>= 1n; sn >>= 1n; }
    let fr = seed;
    let sr = seed;
    for (let k = 0; k < rest.length; k++) {
      if (sn === 0n) throw new Fail('the proof is too long');
      const c = rest[k];
      const both = (fn & 1n) === 1n || fn === sn;
      if (both) {
        fr = await nodeHash(c, fr);
        sr = await nodeHash(c, sr);
        if ((fn & 1n) === 0n) while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
      } else {
        sr = await nodeHash(sr, c);
      }
      fn >>= 1n; sn >>= 1n;
      onStep(k, both, fr, sr);
    }
    if (sn !== 0n) throw new Fail('the proof is too short');
    return { fr, sr };
  }

  // ---- The page ----------------------------------------------------------------------

  function ui() {
    const list = $('#verify-steps');
    const result = $('#verify-result');
    list.replaceChildren();
    let failures = 0;
    const line = (ok, text, why) => {
      const li = document.createElement('li');
      li.className = ok ? 'ok' : 'bad';
      li.textContent = ok ? text : `${text}: ${why}`;
      list.appendChild(li);
      if (!ok) failures++;
      return ok;
    };
    const info = (text) => {
      const li = document.createElement('li');
      li.className = 'info';
      li.textContent = text;
      list.appendChild(li);
    };
    const done = (extra) => {
      const ok = failures === 0 && !extra;
      result.dataset.status = ok ? 'ok' : 'fail';
      result.textContent = ok
        ? '✓ Verified in this browser: every check below passed.'
        : `✗ Verification FAILED${extra ? ': ' + extra : `: ${failures} check(s) did not pass`}.`;
    };
    result.dataset.status = 'running';
    result.textContent = 'Verifying…';
    return { line, info, done, failed: () => failures > 0 };
  }

  function mark(id, ok) {
    const g = document.getElementById(id);
    if (!g) return;
    g.classList.remove('ok', 'bad');
    g.classList.add(ok ? 'ok' : 'bad');
    const m = g.querySelector('.mmark');
    if (m) m.textContent = ok ? '✓' : '✗';
  }

  function decodePayload(entry) {
    // Log entry v1: version, type, integrated_at (8), key ID (32), signature (64), length (2), payload.
    if (entry.length < 108 || entry[0] !== 1) return null;
    const n = (entry[106] << 8) | entry[107];
    if (entry.length !== 108 + n) return null;
    return new TextDecoder('utf-8', { fatal: true }).decode(entry.slice(108));
  }

  async function verifyInclusion(d, u) {
    const entry = b64(d.entry);
    const proof = d.proof.map(b64);
    const leaf = await leafHash(entry);
    u.line(true, `leaf hash SHA-256(0x00 ‖ ${entry.length} entry bytes) = ${short(toB64(leaf))}`);
    mark('entry-box', true);
    mark('n0', document.getElementById('n0')?.dataset.hash === toB64(leaf));
    const root = await inclusionRoot(BigInt(d.index), BigInt(d.tree_size), leaf, proof, (k, left, r) => {
      const shown = document.getElementById(`n${k + 1}`)?.dataset.hash;
      const same = shown === undefined || shown === toB64(r);
      mark(`s${k}`, true);
      mark(`n${k + 1}`, same);
      u.line(same, `step ${k + 1}: proof[${k}] is the ${left ? 'left' : 'right'} sibling → ${short(toB64(r))}`,
        `the page's drawing shows ${short(shown || '')}`);
    });
    const cp = await checkNote('checkpoint', d.checkpoint, d.vkey, d.origin, BigInt(d.tree_size), u.line);
    if (d.policy) await checkCosignatures('checkpoint', d.checkpoint, d.policy, d.witnessed, u);
    const same = equal(root, cp.root);
    mark(`n${proof.length}`, same);
    u.line(same, `recomputed root ${short(toB64(root))} equals the checkpoint's root`, `checkpoint has ${short(toB64(cp.root))}`);
    const payload = decodePayload(entry);
    const out = $('#verified-payload');
    if (payload !== null && out) {
      out.hidden = false;
      out.textContent = 'Payload decoded from the hashed entry bytes:\n' + payload;
    }
  }

  async function verifyConsistency(d, u) {
    const proof = d.proof.map(b64);
    const c1 = await checkNote('older checkpoint', d.first_checkpoint, d.vkey, d.origin, BigInt(d.first), u.line);
    const c2 = await checkNote('newer checkpoint', d.second_checkpoint, d.vkey, d.origin, BigInt(d.second), u.line);
    if (d.policy) {
      await checkCosignatures('older checkpoint', d.first_checkpoint, d.policy, d.first_witnessed, u);
      await checkCosignatures('newer checkpoint', d.second_checkpoint, d.policy, d.second_witnessed, u);
    }
    const first = BigInt(d.first);
    const second = BigInt(d.second);
    const roots = await consistencyRoots(first, second, c1.root, proof, (k, both, fr, sr) => {
      const row = document.getElementById(`c${k}`);
      if (row) row.classList.add('ok');
      u.info(`step ${k + 1}: ${both ? 'extends both roots' : 'extends the newer root'} → older ${short(toB64(fr))}, newer ${short(toB64(sr))}`);
    });
    if (roots === null) {
      if (first === 0n) {
        const empty = await sha256(new Uint8Array(0));
        u.line(equal(c1.root, empty), 'the empty tree\'s root is SHA-256("")', 'it is not');
      } else {
        u.line(equal(c1.root, c2.root), 'equal sizes have equal roots', 'the roots differ: the log forked');
      }
      return;
    }
    u.line(equal(roots.fr, c1.root), `rebuilt older root equals the older checkpoint's root`, `rebuilt ${short(toB64(roots.fr))}`);
    u.line(equal(roots.sr, c2.root), `rebuilt newer root equals the newer checkpoint's root`, `rebuilt ${short(toB64(roots.sr))}`);
  }

  async function run() {
    const btn = $('#verify-btn');
    btn.disabled = true;
    const u = ui();
    let extra = '';
    try {
      if (!window.crypto || !crypto.subtle) throw new Fail('WebCrypto is not available (a secure context, https or localhost, is needed)');
      const d = JSON.parse($('#proof-data').textContent);
      document.querySelectorAll('.mnode').forEach((g) => g.classList.remove('ok', 'bad'));
      document.querySelectorAll('.mmark').forEach((m) => { m.textContent = ''; });
      if (d.kind === 'inclusion') await verifyInclusion(d, u);
      else if (d.kind === 'consistency') await verifyConsistency(d, u);
      else throw new Fail('unknown proof kind');
    } catch (e) {
      extra = e instanceof Fail ? e.message : `the inputs are malformed (${e.message})`;
      u.line(false, 'stopped', extra);
    }
    u.done(extra);
    btn.disabled = false;
  }

  document.addEventListener('DOMContentLoaded', () => {
    const btn = $('#verify-btn');
    if (btn) btn.addEventListener('click', run);
  });
})();
