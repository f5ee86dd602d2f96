// Headless Chromium for the browser tests and the explorer's benchmark: playwright-core
// from NPM_DIR (report/node_modules), Debian's chromium (or $CHROMIUM), a fresh profile
// that close() removes; and the tests' check() with their exit status.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { createRequire } = require('module');

async function launchBrowser(npmDir, options = {}) {
  const { chromium } = createRequire(path.join(path.resolve(npmDir), 'package.json'))('playwright-core');
  // A fresh profile (Playwright passes it as --user-data-dir).
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'imagescore-chromium-'));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 900 },
    ...options,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const close = async () => {
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
  };
  return { browser, close };
}

let failures = 0;
function check(what, ok, detail) {
  console.log((ok ? 'ok: ' : 'FAILED: ') + what + (ok || detail === undefined || detail === '' ? '' : ' (' + detail + ')'));
  if (!ok) failures += 1;
}

// Runs a test's async body: exit status 1 after a failed check or an exception.
function runChecks(body) {
  body().then(() => process.exit(failures ? 1 : 0), (error) => {
    console.log('FAILED: ' + error);
    process.exit(1);
  });
}

module.exports = { launchBrowser, check, runChecks };
