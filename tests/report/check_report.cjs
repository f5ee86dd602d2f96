// Opens an imagescore report in headless Chromium and checks that it works offline:
// every chart rendered, no network request, no error logged, no script injected from
// data; then saves a full-page screenshot.
//   node check_report.cjs NPM_DIR REPORT.html SCREENSHOT.png [TEXT_THAT_MUST_SHOW ...]
'use strict';
const fs = require('fs');
const path = require('path');
const { launchBrowser, check, runChecks } = require('../lib/browser.cjs');

const [npmDir, report, screenshot, ...texts] = process.argv.slice(2);

runChecks(async () => {
  const { browser, close } = await launchBrowser(npmDir);
  const page = await browser.newPage();
  const url = 'file://' + path.resolve(report);
  const requests = [], errors = [], dialogs = [];
  page.on('request', (r) => { if (r.url() !== url && !r.url().startsWith('data:')) requests.push(r.url()); });
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
  // Belt and braces: whatever the page asks for besides itself is refused (and counted above).
  await page.route('**/*', (route) => (route.request().url() === url ? route.continue() : route.abort()));

  await page.goto(url);
  const ready = await page.waitForSelector('body[data-ready="true"]', { timeout: 60000 }).then(() => true, () => false);
  check('page finished drawing', ready);
  const charts = await page.$$eval('.chart', (nodes) => nodes.map((node) => {
    const svg = node.querySelector('svg');
    const canvas = node.querySelector('canvas');
    const box = (svg || canvas || node).getBoundingClientRect();
    return {
      label: node.dataset.label,
      rendered: node.dataset.rendered === 'true',
      marks: svg ? svg.querySelectorAll('path, rect, line, text, circle').length : 0,
      drawn: Boolean(canvas) || Boolean(svg),
      width: box.width, height: box.height,
    };
  }));
  check(charts.length + ' charts found', charts.length > 0);
  for (const c of charts)
    check('chart "' + c.label + '" rendered', c.rendered && c.drawn && c.marks > 10 && c.width > 50 && c.height > 50,
      JSON.stringify(c));
  check('no network request', requests.length === 0, requests.join(', '));
  check('no error logged', errors.length === 0, errors.join(' | '));
  check('no dialog opened by injected script', dialogs.length === 0, dialogs.join(', '));
  const injected = await page.$$eval('main img:not([src^="data:"]), main b, main script', (n) => n.length);
  check('no element made from data strings', injected === 0, injected + ' found');
  const body = await page.innerText('body');
  for (const text of texts) check('shows "' + text + '" as text', body.includes(text));
  await page.screenshot({ path: screenshot, fullPage: true });
  check('screenshot saved to ' + screenshot, fs.statSync(screenshot).size > 10000);
  await close();
});
