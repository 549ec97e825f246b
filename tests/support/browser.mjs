// Real-browser tests: Debian's Chromium (installed by scripts/install-chromium)
// driven by playwright-core. No browser is ever downloaded.
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { ROOT } from './worker.mjs';

export const CHROMIUM = '/usr/bin/chromium';
export const ARTIFACTS = path.join(ROOT, 'test-results');

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
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: run scripts/install-chromium as root (apt-get install chromium)`);
  }
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
