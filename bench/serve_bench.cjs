// Measures one explorer (imagescore serve) in headless Chromium: start-up, time to the
// first screen (page ready, then every visible thumbnail shown), scrolling, the server's
// memory, and thumbnail requests per second (not yet encoded, then from the cache).
// Prints one JSON line. Run by bench/serve.sh; with a screenshot file, saves the first
// screen with one image open there (docs/images/explorer.png:
// node bench/serve_bench.cjs report build/imagescore docs/images/explorer.png --run runs/fashion-mnist).
//   node serve_bench.cjs NPM_DIR IMAGESCORE SCREENSHOT.png|"" SERVE_ARGS...
'use strict';
const fs = require('fs');
const http = require('http');
const { spawn } = require('child_process');
const { launchBrowser } = require('../tests/lib/browser.cjs');

const [npmDir, imagescore, screenshot, ...serveArgs] = process.argv.slice(2);

const rssMiB = (pid) => Number(fs.readFileSync('/proc/' + pid + '/status', 'utf8').match(/VmRSS:\s+(\d+)/)[1]) / 1024;

function startServer() {
  const started = process.hrtime.bigint();
  const server = spawn(imagescore, ['serve', ...serveArgs, '--port', '0'],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  return new Promise((resolve, reject) => {
    let log = '';
    server.stderr.on('data', (chunk) => {
      log += chunk;
      const found = log.match(/open (http:\/\/[^ ]+)/);
      if (found) resolve({ server, url: found[1], startup: Number(process.hrtime.bigint() - started) / 1e9 });
    });
    server.on('exit', (code) => reject(new Error('serve exited with ' + code + ': ' + log)));
  });
}

// `total` GET requests of /api/thumb for `rows`, `concurrency` at a time over kept-alive
// connections; requests per second.
async function thumbnailRate(url, rows, concurrency) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const get = (row) => new Promise((resolve, reject) => {
    http.get(url + 'api/thumb?row=' + row, { agent }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error('status ' + res.statusCode))));
    }).on('error', reject);
  });
  const started = process.hrtime.bigint();
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < rows.length) await get(rows[next++]);
  }));
  agent.destroy();
  return rows.length / (Number(process.hrtime.bigint() - started) / 1e9);
}

(async () => {
  const { server, url, startup } = await startServer();
  const { browser, close } = await launchBrowser(npmDir, { viewport: { width: 1400, height: 900 } });
  const page = await browser.newPage();
  const visibleShown = () => page.waitForFunction(() => {
    const grid = document.querySelector('#grid').getBoundingClientRect();
    return [...document.querySelectorAll('#grid .cell img')].filter((img) => {
      const box = img.getBoundingClientRect();
      return box.bottom > grid.top && box.top < grid.bottom;
    }).every((img) => img.complete && img.naturalWidth > 0);
  }, null, { timeout: 120000, polling: 10 });

  const opened = Date.now();
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 120000 });
  const ready = Date.now() - opened;
  await visibleShown();
  const firstScreen = Date.now() - opened;
  const rows = await page.evaluate(() => Number(document.querySelector('#grid-spacer').dataset.count));
  const rssFirst = rssMiB(server.pid);

  // Jumps to 20 places of the grid: how long until each screen's thumbnails are shown.
  let scrolled = 0;
  for (let k = 1; k <= 20; ++k) {
    const started = Date.now();
    await page.$eval('#grid', (g, f) => { g.scrollTop = f * (g.scrollHeight - g.clientHeight); }, k / 21);
    await page.waitForTimeout(20);
    await visibleShown();
    scrolled += Date.now() - started;
  }
  // Re-sorting every row by another column.
  const sortStarted = Date.now();
  await page.selectOption('#sort-column', 'msp');
  const sortMs = Date.now() - sortStarted;
  if (screenshot) {
    await page.$eval('#grid', (g) => { g.scrollTop = 0; });
    await page.click('#grid .cell img');
    await page.waitForFunction(() => document.querySelector('#detail-image')?.naturalWidth > 0);
    await visibleShown();
    await page.screenshot({ path: screenshot });
  }
  await close();

  // Rows not shown yet, spread over the table: 2,000 (or all) encoded, then again cached.
  const sample = Array.from({ length: Math.min(2000, rows) }, (_, k) => Math.floor((k + 0.5) * rows / Math.min(2000, rows)));
  const encoded = await thumbnailRate(url, sample, 4);
  const cached = await thumbnailRate(url, sample, 4);
  const rssAfter = rssMiB(server.pid);
  server.kill('SIGINT');
  console.log(JSON.stringify({
    rows, startup_s: startup, page_ready_ms: ready, first_screen_ms: firstScreen, scroll_screen_ms: scrolled / 20,
    sort_ms: sortMs, rss_first_screen_mib: rssFirst, rss_after_mib: rssAfter, thumbs_per_s: encoded,
    cached_thumbs_per_s: cached,
  }));
})().catch((error) => {
  console.error('serve_bench: ' + error.message);
  process.exit(1);
});
