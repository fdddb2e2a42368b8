// What the real-browser tests share: how headless Chromium is started (with
// playwright-core, loopback only) and the polling wait they use for
// everything that happens on the ledger's own schedule.
import { chromium } from 'playwright-core';

const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/** Headless Chromium and one light-theme 1360x900 context. */
export async function launch() {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ARGS });
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, colorScheme: 'light', deviceScaleFactor: 1 });
  return { browser, context };
}

/** Calls `check` every `every` ms until it returns something truthy, which is returned; fails after `ms`. */
export async function until(what, check, ms = 90_000, every = 250) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}
