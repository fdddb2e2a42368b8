// Lineage Governance Console: composes a governance statement, signs it in
// this browser with an authority key read from a local key file, posts the
// DSSE envelope to POST /v1/entries, and verifies the receipt with
// verify.js (the Proof Viewer's code).
//
// The key: the file `lineage keygen` writes (one line, canonical standard
// base64 of a 32-byte Ed25519 seed). It is imported into WebCrypto as a
// non-extractable key and kept only in this closure: never sent, never
// stored (no localStorage, no cookie, no form field that is submitted).
// Its key ID is not computed here (BLAKE3 is not in WebCrypto): the public
// key is matched against the authority keys the page lists with their IDs.
// DSSE v1: signature over "DSSEv1" SP len(type) SP type SP len(payload) SP payload.
'use strict';
(() => {
  const TYPE = 'application/vnd.lineage.grant.v1+json';
  const $ = (s) => document.querySelector(s);
  const enc = new TextEncoder();
  const data = JSON.parse($('#console-data').textContent);
  let signer = null; // { key: CryptoKey (non-extractable), keyId, publicKey }

  const toB64 = (u) => btoa(String.fromCharCode(...u));
  function strictB64(s) {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) return null;
    let bytes;
    try { bytes = Uint8Array.from(atob(s), (c) => c.charCodeAt(0)); } catch { return null; }
    return toB64(bytes) === s ? bytes : null;
  }
  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) { out.set(p, o); o += p.length; }
    return out;
  }
  const now = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const val = (id) => $(id).value.trim();
  const patterns = (id) => val(id).split(',').map((s) => s.trim()).filter((s) => s !== '');
  const quote = (s) => (/^[A-Za-z0-9._\/:@%+=,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

  // ---- Composing ---------------------------------------------------------------------

  function statement(at) {
    const action = $('#f-action').value;
    if (action === 'halt' || action === 'resume') {
      const s = { action, target: { [$('#f-target-kind').value]: val('#f-target') } };
      if (action === 'halt' && val('#f-reason') !== '') s.reason = val('#f-reason');
      s.at = at;
      return s;
    }
    const s = { action, runtime: val('#f-runtime'), public_key: val('#f-public-key'), at };
    if (action === 'grant') {
      if (val('#f-not-before') !== '') s.not_before = val('#f-not-before');
      if (val('#f-not-after') !== '') s.not_after = val('#f-not-after');
      const scope = {};
      for (const [name, id] of [['kinds', '#f-kinds'], ['workloads', '#f-workloads'], ['domains', '#f-domains']]) {
        if (val(id) !== '') scope[name] = patterns(id);
      }
      if (Object.keys(scope).length > 0) s.scope = scope;
    }
    return s;
  }

  function cli(s) {
    const parts = ['lineage', s.action, '--authority-key', 'AUTHORITY.key'];
    if (s.target) {
      const [kind, name] = Object.entries(s.target)[0];
      parts.push(`--${kind}`, quote(name || '…'));
      if (s.reason) parts.push('--reason', quote(s.reason));
    } else {
      parts.push('--runtime', quote(s.runtime || '…'), '--public-key', quote(s.public_key || '…'));
      if (s.not_before) parts.push('--not-before', quote(s.not_before));
      if (s.not_after) parts.push('--not-after', quote(s.not_after));
      for (const name of ['kinds', 'workloads', 'domains']) {
        if (s.scope && s.scope[name]) parts.push(`--scope-${name}`, quote(s.scope[name].join(',')));
      }
    }
    parts.push('--server', quote(location.origin));
    return parts.join(' ');
  }

  function render() {
    const action = $('#f-action').value;
    const key = action === 'grant' || action === 'revoke';
    document.querySelectorAll('.only-halt').forEach((e) => { e.hidden = key; });
    document.querySelectorAll('.only-key').forEach((e) => { e.hidden = !key; });
    document.querySelectorAll('.only-grant').forEach((e) => { e.hidden = action !== 'grant'; });
    document.querySelectorAll('.only-halt-reason').forEach((e) => { e.hidden = action !== 'halt'; });
    const s = statement(now());
    $('#payload-json').textContent = JSON.stringify(s, null, 2) + '\n(“at” is set to the time of signing)';
    $('#cli-command').textContent = cli(s);
  }

  // ---- The key -----------------------------------------------------------------------

  function status(text, cls) {
    const el = $('#key-status');
    el.textContent = text;
    el.className = `small ${cls}`;
  }

  async function load(file) {
    signer = null;
    $('#sign-post').disabled = true;
    $('#forget-key').disabled = true;
    const text = await file.text();
    const line = text.endsWith('\n') ? text.slice(0, -1) : text;
    const seed = strictB64(line);
    if (seed === null || seed.length !== 32) {
      throw new Error('this is not a key file: expected one line of canonical standard base64 of a 32-byte Ed25519 seed, as `lineage keygen` writes');
    }
    // PKCS#8 wrapping of an Ed25519 seed (RFC 8410).
    const der = concat(Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]), seed);
    let publicKey;
    let key;
    try {
      const tmp = await crypto.subtle.importKey('pkcs8', der, { name: 'Ed25519' }, true, ['sign']);
      const jwk = await crypto.subtle.exportKey('jwk', tmp);
      publicKey = toB64(Uint8Array.from(atob(jwk.x.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0)));
      key = await crypto.subtle.importKey('pkcs8', der, { name: 'Ed25519' }, false, ['sign']);
    } finally {
      seed.fill(0);
      der.fill(0);
    }
    const authority = data.authorities.find((a) => a.public_key === publicKey);
    if (!authority) {
      throw new Error(`the key in this file (public key ${publicKey}) is not an authority key of this ledger; the ledger would refuse what it signs`);
    }
    signer = { key, keyId: authority.key_id, publicKey };
    status(`Authority key ${authority.key_id.slice(0, 16)}… loaded into this page's memory (not extractable, not stored).`, 'ok-text');
    $('#sign-post').disabled = false;
    $('#forget-key').disabled = false;
  }

  function forget() {
    signer = null;
    $('#f-key-file').value = '';
    $('#sign-post').disabled = true;
    $('#forget-key').disabled = true;
    status('No key loaded.', 'muted');
  }

  // ---- Signing, posting, verifying ---------------------------------------------------

  function result(state, text) {
    const el = $('#act-result');
    el.dataset.status = state;
    el.textContent = text;
  }

  async function signAndPost() {
    if (!signer) return;
    const btn = $('#sign-post');
    btn.disabled = true;
    $('#receipt-json').hidden = true;
    $('#receipt-verify').hidden = true;
    try {
      const s = statement(now());
      const json = JSON.stringify(s);
      $('#payload-json').textContent = JSON.stringify(s, null, 2);
      $('#cli-command').textContent = cli(s);
      const payload = enc.encode(json);
      const type = enc.encode(TYPE);
      const pae = concat(enc.encode(`DSSEv1 ${type.length} `), type, enc.encode(` ${payload.length} `), payload);
      const sig = new Uint8Array(await crypto.subtle.sign({ name: 'Ed25519' }, signer.key, pae));
      const envelope = { payloadType: TYPE, payload: toB64(payload), signatures: [{ keyid: signer.keyId, sig: toB64(sig) }] };
      result('running', 'Posting the signed envelope…');
      const resp = await fetch('/v1/entries', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify(envelope),
        credentials: 'omit',
      });
      const body = await resp.json().catch(() => null);
      if (!resp.ok || !body) {
        const why = body && body.detail ? `${body.code}: ${body.detail}` : `HTTP ${resp.status}`;
        result('fail', `✗ The ledger refused the statement (${why}).`);
        return;
      }
      result('ok', `✓ Appended at index ${body.index} (event ${body.event_id}).`);
      $('#receipt-json').textContent = JSON.stringify(body, null, 2);
      $('#receipt-json').hidden = false;
      const size = body.checkpoint.split('\n')[1];
      $('#proof-data').textContent = JSON.stringify({
        kind: 'inclusion', index: body.index, tree_size: Number(size), entry: body.entry,
        proof: body.inclusion_proof, checkpoint: body.checkpoint, vkey: data.vkey, origin: data.origin,
      });
      $('#after-link').href = s.action === 'halt' ? `/governance?halt=${body.index}#subtree` : `/governance#history`;
      $('#receipt-verify').hidden = false;
      $('#verify-btn').click();
    } catch (e) {
      result('fail', `✗ ${e.message}`);
    } finally {
      btn.disabled = !signer;
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    if (!$('#act-form')) return;
    $('#act-form').addEventListener('input', render);
    $('#act-form').addEventListener('change', render);
    render();
    $('#f-key-file').addEventListener('change', async (ev) => {
      const file = ev.target.files && ev.target.files[0];
      if (!file) return;
      try {
        if (!window.crypto || !crypto.subtle) throw new Error('WebCrypto is not available (a secure context, https or localhost, is needed)');
        await load(file);
      } catch (e) {
        signer = null;
        status(`✗ ${e.message}`, 'bad-text');
      } finally {
        // Drop the file from the form: only the imported key stays, in memory.
        ev.target.value = '';
      }
    });
    $('#forget-key').addEventListener('click', forget);
    $('#sign-post').addEventListener('click', signAndPost);
  });
})();
