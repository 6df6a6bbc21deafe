/**
 * Real headless Chromium for page tests, driven by playwright-core. Without `/usr/bin/chromium` the tests are
 * reported as ignored with a loud note (CI installs Chromium, so there they always run).
 *
 * @module
 */
import { type Browser, chromium } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";

/** Whether Chromium is installed here. */
export const hasChromium = await Deno.stat(CHROMIUM).then((s) => s.isFile).catch(() => false);
if (!hasChromium) {
  console.warn(`\n*** SKIPPED: browser tests need Chromium at ${CHROMIUM} (apt-get install chromium). ***\n`);
}

/** Launches headless Chromium; close it with `await using`. */
export async function launchBrowser(): Promise<Browser & AsyncDisposable> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
    ],
  });
  return Object.assign(browser, { [Symbol.asyncDispose]: () => browser.close() });
}

/**
 * Playwright keeps pipes and timers of its own, which Deno's sanitizers would count against the test; the server
 * side of each browser test is still checked by the sanitizers of the other suites.
 */
export const browserTest = { ignore: !hasChromium, sanitizeOps: false, sanitizeResources: false };
