// Waiting in tests: a pause, and polling until a check passes.

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `check` every 50 ms until it returns true; fails after `timeoutMs`
 * with what it returned last (so a check can return what it saw instead of
 * false).
 */
export async function eventually(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await check();
    if (last === true) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
    await sleep(50);
  }
}
