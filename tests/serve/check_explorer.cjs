// Uses a running explorer (imagescore serve) in headless Chromium and checks every
// feature against the numbers of its own table: sorting, filters with their live counts
// and precision, one image's details, ticking and exporting (the downloaded files are
// kept for the shell test), the scatter's brush and the disagreements. With NASTY given,
// checks instead that a page full of hostile names shows them as text only.
//   node check_explorer.cjs NPM_DIR URL SCREENSHOT_DIR DOWNLOAD_DIR   (its name names the screenshots)
//   node check_explorer.cjs NPM_DIR URL SCREENSHOT_DIR "" NASTY
'use strict';
const fs = require('fs');
const path = require('path');
const { launchBrowser, check, runChecks } = require('../lib/browser.cjs');

const [npmDir, url, screenshots, downloads, nasty] = process.argv.slice(2);
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

runChecks(async () => {
  const { browser, close } = await launchBrowser(npmDir, { acceptDownloads: true, viewport: { width: 1400, height: 900 } });
  const page = await browser.newPage();
  const origin = new URL(url).origin;
  const foreign = [], errors = [], dialogs = [];
  page.on('request', (r) => { if (!r.url().startsWith(origin) && !r.url().startsWith('blob:')) foreign.push(r.url()); });
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });

  const started = Date.now();
  await page.goto(url);
  const ready = await page.waitForSelector('body[data-ready="true"]', { timeout: 60000 }).then(() => true, () => false);
  check('page ready in ' + (Date.now() - started) + ' ms', ready);
  const table = await page.evaluate(() => fetch('/api/table').then((r) => r.json()));
  const n = table.rows;
  const count = () => page.textContent('#count');
  const shownRows = () => page.$$eval('#grid .cell', (cells) => cells
    .map((c) => ({ row: Number(c.dataset.row), t: c.style.transform }))
    .map(({ row, t }) => { const [x, y] = t.match(/-?[\d.]+/g).map(Number); return { row, x, y }; })
    .sort((a, b) => a.y - b.y || a.x - b.x).map((c) => c.row));
  check('counts every image', (await count()) === n.toLocaleString('en') + ' of ' + n.toLocaleString('en') + ' images',
    await count());

  if (nasty) {
    const text = await page.innerText('body');
    check('the hostile class name shows as text', text.includes(nasty));
    await page.selectOption('#sort-column', 'id');
    await page.selectOption('#sort-dir', 'asc');
    await page.click('#grid .cell[data-row="0"]');
    await page.waitForSelector('#detail-path');
    check('the hostile path shows as text', (await page.textContent('#detail-path')) === nasty + '.png');
    const injected = await page.$$eval('img[src="x"], img[onerror], #app b img', (nodes) => nodes.length);
    check('no element made from data strings', injected === 0, injected + ' found');
    check('no dialog opened by injected script', dialogs.length === 0, dialogs.join(', '));
    check('no image request without --data', !(await page.$('#grid img')));
  } else {
    // Thumbnails arrive.
    await page.waitForFunction(() => [...document.querySelectorAll('#grid .cell img')].slice(0, 8)
      .every((img) => img.complete && img.naturalWidth > 0), null, { timeout: 20000 });
    check('thumbnails decoded and shown', true);
    const virtual = (await page.$$('#grid .cell')).length;
    check('the grid draws only what is visible (' + virtual + ' of ' + n + ' cells)', virtual > 0 && virtual < n);

    // Sorting: by msp, lowest first; ties by id.
    const order = (column, sign) => [...Array(n).keys()].sort((a, b) => {
      const va = table.values[column][a], vb = table.values[column][b];
      return va !== vb ? sign * (va - vb) : table.id[a] - table.id[b];
    });
    await page.selectOption('#sort-column', 'msp');
    await page.selectOption('#sort-dir', 'asc');
    const firstShown = (await shownRows()).slice(0, 12);
    check('sorted by msp, lowest first', same(firstShown, order('msp', 1).slice(0, 12)), firstShown.join(','));
    await page.selectOption('#sort-dir', 'desc');
    check('sorted by msp, highest first', same((await shownRows()).slice(0, 12), order('msp', -1).slice(0, 12)));

    // Scrolling to the end shows the last image of the order.
    await page.$eval('#grid', (g) => { g.scrollTop = g.scrollHeight; });
    await page.waitForTimeout(300);
    check('scrolled to the last image', (await shownRows()).includes(order('msp', -1)[n - 1]));
    await page.$eval('#grid', (g) => { g.scrollTop = 0; });

    // Filters with live counts and precision.
    const rowsWhere = (keep) => [...Array(n).keys()].filter(keep);
    const summary = (rows) => {
      const right = rows.filter((r) => table.label[r] === table.pred[r]).length;
      return rows.length + ' of ' + n + ' images|precision ' + (rows.length ? (right / rows.length).toFixed(4) : '—') +
        ' (' + right + ' right)';
    };
    const shown = async () => (await count()) + '|' + (await page.textContent('#precision'));
    await page.selectOption('#filter-pred', '3');
    check('filter by predicted class', (await shown()) === summary(rowsWhere((r) => table.pred[r] === 3)), await shown());
    await page.selectOption('#filter-pred', '');
    await page.selectOption('#filter-label', '2');
    check('filter by true class', (await shown()) === summary(rowsWhere((r) => table.label[r] === 2)), await shown());
    await page.selectOption('#filter-label', '');
    await page.selectOption('#filter-correct', 'wrong');
    const wrong = rowsWhere((r) => table.label[r] !== table.pred[r]);
    check('filter the wrong predictions (' + wrong.length + ')', wrong.length > 0 && (await shown()) === summary(wrong), await shown());
    await page.selectOption('#filter-correct', '');
    const sorted = [...table.values.image_score].sort((a, b) => a - b);
    const median = sorted[Math.floor(n / 2)];
    await page.selectOption('#range-column', 'image_score');
    await page.fill('#range-min', String(median));
    check('filter by a score range', (await shown()) === summary(rowsWhere((r) => table.values.image_score[r] >= median)),
      await shown());
    await page.fill('#range-min', '');
    check('clearing a filter shows every image again', (await count()).startsWith(n + ' of'));

    // One image: scores, ranks and per-tap terms.
    const top = order('msp', -1)[0];
    await page.click('#grid .cell[data-row="' + top + '"] img');
    await page.waitForSelector('#detail-taps');
    check('the detail panel names the image', (await page.textContent('#detail-title')) === 'image ' + table.id[top]);
    await page.waitForFunction(() => document.querySelector('#detail-image').naturalWidth > 0);
    check('the full image is shown', (await page.$eval('#detail-image', (i) => i.naturalWidth)) === 28);
    const ranks = await page.$$eval('#detail-scores tbody tr', (rows) => rows.map((r) => r.textContent));
    check('the top image by msp ranks 1st by msp', ranks.some((t) => t.startsWith('msp') && t.endsWith('1 of ' + n)),
      ranks.join(' | '));
    // From the file's tap: columns, or computed now from the model and its profiles.
    const taps = await page.$$eval('#detail-taps .tap', (rows) => rows.map((r) => r.querySelector('.name').textContent));
    const expectedTaps = table.taps.length ? table.taps.map((t) => t.slice(4))
      : (await page.evaluate((r) => fetch('/api/terms?row=' + r).then((x) => x.json()), top)).taps.map((t) => t.tap);
    check('per-tap terms of every tap (' + (table.taps.length ? 'from the file' : 'computed') + ')',
      expectedTaps.length > 0 && same(taps, expectedTaps), taps.join(','));
    if (table.neighbours) {
      await page.waitForSelector('#detail-neighbours .mini');
      const near = await page.$$eval('#detail-neighbours .mini', (m) => m.map((x) => x.textContent));
      check('the nearest labelled images (' + near.length + ')', near.length > 0);
    }
    if (table.model) {
      await page.waitForSelector('#detail-maps img');
      const maps = await page.$$eval('#detail-maps img', (images) => images.filter((i) => i.src.startsWith('data:image/png')).length);
      check('the first layer\'s feature maps (' + maps + ')', maps > 0);
    }
    await page.screenshot({ path: path.join(screenshots, 'explorer-' + path.basename(downloads) + '.png') });
    await page.click('#detail-close');

    // Tick three images, export them; then export the current filter.
    fs.mkdirSync(downloads, { recursive: true });
    const ticked = (await shownRows()).slice(0, 3);
    for (const r of ticked) await page.click('#grid .cell[data-row="' + r + '"] .tick');
    check('ticked count', (await page.textContent('#ticked-count')) === '3 ticked');
    await page.selectOption('#export-by', 'image_score');
    const save = async (button, name) => {
      const [download] = await Promise.all([page.waitForEvent('download'), page.click(button)]);
      await download.saveAs(path.join(downloads, name));
      return fs.readFileSync(path.join(downloads, name), 'utf8').trim().split('\n');
    };
    const exported = await save('#export-ticked', 'ticked.csv');
    const ids = exported.slice(1).map((line) => Number(line.split(',')[0])).sort((a, b) => a - b);
    check('the ticked images are exported', same(ids, ticked.map((r) => table.id[r]).sort((a, b) => a - b)), exported.join(' / '));
    const line = exported.slice(1).find((l) => Number(l.split(',')[0]) === table.id[ticked[0]]).split(',');
    check('each line has the pseudo-label and the score',
      Number(line[2]) === table.pred[ticked[0]] && Number(line[4]) === table.values.image_score[ticked[0]], line.join(','));
    await page.selectOption('#filter-ticked', 'ticked');
    check('filter by selection membership', (await count()).startsWith('3 of'));
    await page.selectOption('#filter-ticked', '');
    await page.selectOption('#filter-pred', '1');
    const filterRows = rowsWhere((r) => table.pred[r] === 1);
    const filtered = await save('#export-filter', 'filter.csv');
    fs.writeFileSync(path.join(downloads, 'filter.count'), String(filterRows.length));
    check('the current filter is exported', filtered.length - 1 === filterRows.length, filtered.length - 1);
    await page.selectOption('#filter-pred', '');

    // Two scores: brushing the scatter filters the grid.
    await page.click('#tab-scatter');
    await page.waitForSelector('#scatter[data-rendered="true"] canvas', { timeout: 30000 });
    check('the scatter is drawn', true);
    const box = await (await page.$('#scatter canvas')).boundingBox();
    // Across the plot (560 x 420 pixels right of the y axis; the brush stops at its
    // edge), over its upper half.
    await page.mouse.move(box.x + 70, box.y + 12);
    await page.mouse.down();
    await page.mouse.move(box.x + 640, box.y + 220, { steps: 8 });
    await page.mouse.up();
    await page.waitForSelector('#brush-note');
    const note = await page.textContent('#brush-note');
    const [x0, x1, y0, y1] = note.match(/-?[\d.]+(e[-+]?\d+)?(?=[\],])/g).map(Number);
    const inside = rowsWhere((r) => table.values.image_score[r] >= x0 && table.values.image_score[r] <= x1 &&
      table.values.msp[r] >= y0 && table.values.msp[r] <= y1).length;
    const brushed = Number((await count()).split(' ')[0].replace(/,/g, ''));
    check('brushing filters the grid to the brushed ranges (' + brushed + ' of ' + n + ')',
      brushed > 0 && brushed < n && Math.abs(brushed - inside) <= 1, note + ', ' + inside + ' inside');
    await page.screenshot({ path: path.join(screenshots, 'scatter-' + path.basename(downloads) + '.png') });
    await page.click('#clear-filters');
    check('clear filters drops the brush', (await count()).startsWith(n + ' of'));

    // Disagreements: both directions listed; "show them" filters the grid to them.
    await page.click('#tab-disagreements');
    await page.selectOption('#dis-a', 'image_score');
    await page.selectOption('#dis-b', 'msp');
    await page.selectOption('#dis-share', '0.3');
    const percentile = (column) => {
      const p = new Array(n);
      order(column, 1).forEach((r, k) => { p[r] = k / (n - 1); });
      return p;
    };
    const pa = percentile('image_score'), pb = percentile('msp');
    const expected = rowsWhere((r) => (pa[r] >= 0.7 && pb[r] <= 0.3) || (pb[r] >= 0.7 && pa[r] <= 0.3)).length;
    const headings = await page.$$eval('.disagree h3', (h) => h.map((x) => x.textContent));
    const listed = headings.reduce((sum, h) => sum + Number(h.split(' ')[0]), 0);
    check('disagreements listed both ways (' + listed + ')', headings.length === 2 && listed === expected,
      headings.join(' | ') + ' expected ' + expected);
    await page.click('#dis-show');
    check('the disagreements shown in the grid', (await count()).startsWith(expected + ' of'), await count());
  }
  check('no request leaves the server', foreign.length === 0, foreign.join(', '));
  check('no error logged', errors.length === 0, errors.join(' | '));
  if (nasty) await page.screenshot({ path: path.join(screenshots, 'explorer-hostile.png') });
  await close();
});
