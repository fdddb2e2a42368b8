// Lineage health dashboard: polls /health.json every 2 s and swaps in the
// figures (text), the server-drawn charts (SVG) and the degraded banner,
// without reloading the page. Without JavaScript the page is still whole,
// as of its load.
'use strict';
(() => {
  const PERIOD_MS = 2000;
  const $ = (sel) => document.querySelector(sel);

  function render(doc) {
    for (const [name, text] of Object.entries(doc.figures)) {
      for (const el of document.querySelectorAll(`[data-figure="${name}"]`)) {
        if (el.textContent !== text) el.textContent = text;
      }
    }
    for (const [name, svg] of Object.entries(doc.charts)) {
      const el = document.querySelector(`[data-chart="${name}"]`);
      // Markup drawn by the server, which escapes every label in it.
      if (el) el.innerHTML = svg;
    }
    const banner = $('#health-banner');
    const reasons = $('#health-reasons');
    reasons.replaceChildren(...doc.reasons.map((r) => {
      const li = document.createElement('li');
      li.dataset.code = r.code;
      li.textContent = r.detail;
      return li;
    }));
    banner.hidden = !doc.degraded;
    const state = $('#health-state');
    const dot = document.createElement('span');
    dot.className = `status-dot ${doc.degraded ? 'bad' : 'ok'}`;
    state.replaceChildren(dot, document.createTextNode(doc.degraded ? ' Degraded' : ' Healthy'));
    const body = $('#rejection-table tbody');
    body.replaceChildren(...doc.rejections.map((r) => {
      const tr = document.createElement('tr');
      const code = document.createElement('code');
      code.className = 'code-name';
      code.textContent = r.code;
      const cells = [code, r.minute, r.hour, r.total].map((v, i) => {
        const td = document.createElement('td');
        if (i === 0) td.append(v); else { td.className = 'num'; td.textContent = String(v); }
        return td;
      });
      tr.append(...cells);
      return tr;
    }));
    $('#no-rejections').hidden = doc.rejections.length > 0;
    const at = $('#health-at');
    at.dateTime = doc.at;
    at.textContent = doc.at;
    $('#health-samples').textContent = `${doc.samples[0]} + ${doc.samples[1]}`;
    if (doc.witnessing) renderWitnesses(doc.witnessing);
    document.body.dataset.healthUpdated = doc.at;
  }

  function renderWitnesses(w) {
    const card = $('#witnesses');
    if (!card) return;
    card.dataset.quorum = w.quorum;
    $('#quorum-alert').hidden = w.quorum !== 'unmet';
    $('#quorum-since').textContent = w.quorum_unmet_for ? ` for ${w.quorum_unmet_for}` : '';
    $('#quorum-detail').textContent = w.quorum_detail;
    for (const [name, text] of Object.entries(w)) {
      for (const el of card.querySelectorAll(`[data-witness-figure="${name}"]`)) el.textContent = String(text);
    }
    $('#quorum-lead').textContent = w.quorum === 'met' ? 'The quorum is met.' : w.quorum === 'pending' ? w.quorum_detail : 'The quorum is not met.';
    const cell = (...parts) => {
      const td = document.createElement('td');
      td.append(...parts);
      return td;
    };
    $('#witness-table tbody').replaceChildren(...w.witnesses.map((r) => {
      const tr = document.createElement('tr');
      tr.dataset.witness = r.name;
      tr.dataset.state = r.state;
      const name = document.createElement('strong');
      name.textContent = r.name;
      const url = document.createElement('span');
      url.className = 'muted small';
      url.textContent = r.url;
      const dot = document.createElement('span');
      dot.className = `status-dot ${r.state === 'up' ? 'ok' : r.state === 'failing' ? 'bad' : ''}`;
      const since = r.failing_for ? `failing for ${r.failing_for} (since ${r.failing_since})` : '–';
      const size = cell(r.size === null ? '–' : String(r.size));
      size.className = 'num';
      const err = cell(r.last_error || '–');
      err.className = 'wrap-any small';
      tr.append(
        cell(name, document.createElement('br'), url),
        cell(dot, ` ${r.state}`),
        cell(since),
        size,
        cell(r.last_cosigned_ago ? `${r.last_cosigned_ago} ago` : 'never'),
        err,
      );
      return tr;
    }));
  }

  async function poll() {
    try {
      const r = await fetch('/health.json', { cache: 'no-store', headers: { accept: 'application/json' } });
      if (r.ok) render(await r.json());
    } catch (_) {
      // The ledger is unreachable: keep the last figures and try again.
    }
    setTimeout(poll, PERIOD_MS);
  }
  setTimeout(poll, PERIOD_MS);
})();
