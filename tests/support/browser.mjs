// Real-browser tests: Debian's Chromium (installed by scripts/install-chromium)
// driven by playwright-core. No browser is ever downloaded.
//
// Without Chromium the browser suites are skipped, visibly and with the
// reason (`describe(name, { skip: BROWSER_SKIP }, ...)`): a machine without
// root still runs every other test, and the report says what did not run.
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { ROOT } from './worker.mjs';

export const CHROMIUM = '/usr/bin/chromium';
export const ARTIFACTS = path.join(ROOT, 'test-results');

/** Why the browser tests cannot run here, or false when they can. */
export const BROWSER_SKIP = existsSync(CHROMIUM)
  ? false
  : `${CHROMIUM} is missing: install it with \`sudo apt-get install chromium\` (or run scripts/install-chromium as root)`;

const ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

export async function launchBrowser() {
  if (BROWSER_SKIP) throw new Error(BROWSER_SKIP);
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 30_000 });
}

/** Where a test saves its screenshots and other artifacts (gitignored). */
export function artifactPath(name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  return path.join(ARTIFACTS, name);
}

/**
 * Collects a page's uncaught exceptions, so a test can assert the page ran
 * cleanly. (Console messages about refused requests are expected and kept apart.)
 */
export function watchPage(page) {
  const pageErrors = [];
  const console = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => console.push(`${m.type()}: ${m.text()}`));
  return { pageErrors, console };
}
