// Lineage Explorer: copy-to-clipboard for hashes. Everything else is plain HTML.
'use strict';
(() => {
  async function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return;
    }
    const t = document.createElement('textarea');
    t.value = text;
    t.setAttribute('readonly', '');
    t.style.position = 'fixed';
    t.style.opacity = '0';
    document.body.appendChild(t);
    t.select();
    document.execCommand('copy');
    t.remove();
  }

  document.addEventListener('click', async (ev) => {
    const b = ev.target.closest('button.copy');
    if (!b) return;
    ev.preventDefault();
    try {
      await copy(b.dataset.copy || '');
      b.classList.add('copied');
      setTimeout(() => b.classList.remove('copied'), 1200);
    } catch (_) {
      b.classList.add('failed');
      setTimeout(() => b.classList.remove('failed'), 1200);
    }
  });
})();
