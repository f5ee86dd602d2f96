// imagescore explorer: every image of a scores file in a virtual-scrolling grid, sorted
// and filtered in the browser; two scores against each other; one image's details; ticked
// images or the current filter exported as a selection file. Data strings are only ever
// set as text (textContent, option text), never parsed as HTML.
'use strict';

(function () {
  const app = document.getElementById('app');
  const CELL_W = 124, CELL_H = 156, OVERSCAN = 2, SCATTER_POINTS = 5000, DISAGREE_SHOWN = 100;

  // Elements are made from tag names and properties only.
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === 'dataset') Object.assign(node.dataset, value);
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else node[key] = value;
    }
    for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return node;
  }
  function option(value, text) { return el('option', { value: String(value), textContent: text }); }
  function fmt(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return '—';
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(3) : v.toFixed(4);
  }

  const state = {
    data: null, n: 0, values: {}, label: null, pred: null, ticked: new Set(),
    filtered: new Uint32Array(0), brush: null, only: null, onlyName: '', detailRow: null,
  };

  async function getJson(url) {
    const response = await fetch(url);
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }

  // ---- controls ---------------------------------------------------------------------
  const ui = {};
  function buildControls(d) {
    const scoreColumns = d.columns.concat(d.taps);
    const classOptions = (id) => {
      const s = el('select', { id });
      s.append(option('', 'any'));
      d.classes.forEach((name, c) => s.append(option(c, name)));
      return s;
    };
    ui.sortColumn = el('select', { id: 'sort-column' }, option('id', 'id'));
    scoreColumns.forEach((c) => ui.sortColumn.append(option(c, c)));
    ui.sortColumn.value = d.columns.includes('image_score') ? 'image_score' : scoreColumns[0];
    ui.sortDir = el('select', { id: 'sort-dir' }, option('desc', 'highest first'), option('asc', 'lowest first'));
    ui.label = classOptions('filter-label');
    ui.pred = classOptions('filter-pred');
    ui.correct = el('select', { id: 'filter-correct', disabled: !d.labels },
      option('', 'all'), option('right', 'right'), option('wrong', 'wrong'));
    ui.rangeColumn = el('select', { id: 'range-column' });
    scoreColumns.forEach((c) => ui.rangeColumn.append(option(c, c)));
    ui.rangeMin = el('input', { id: 'range-min', type: 'number', step: 'any', placeholder: 'min' });
    ui.rangeMax = el('input', { id: 'range-max', type: 'number', step: 'any', placeholder: 'max' });
    ui.tickedFilter = el('select', { id: 'filter-ticked' },
      option('', 'all'), option('ticked', 'ticked'), option('unticked', 'not ticked'));
    ui.search = el('input', { id: 'search', type: 'search', placeholder: 'path contains' });
    ui.exportBy = el('select', { id: 'export-by' });
    scoreColumns.forEach((c) => ui.exportBy.append(option(c, c)));
    ui.exportBy.value = ui.sortColumn.value;
    for (const control of [ui.sortColumn, ui.sortDir, ui.label, ui.pred, ui.correct, ui.rangeColumn, ui.tickedFilter])
      control.addEventListener('change', update);
    for (const control of [ui.rangeMin, ui.rangeMax, ui.search]) control.addEventListener('input', update);

    const field = (text, control) => el('label', { className: 'field' }, el('span', {}, text), control);
    return el('aside', { id: 'controls' },
      el('h2', {}, 'Sort'), field('by', ui.sortColumn), field('order', ui.sortDir),
      el('h2', {}, 'Filter'), field('true class', ui.label), field('predicted', ui.pred),
      field('prediction', ui.correct), field('score', ui.rangeColumn),
      el('div', { className: 'range' }, ui.rangeMin, ui.rangeMax),
      field('ticked', ui.tickedFilter), field('path', ui.search),
      el('div', { id: 'extra-filters' }),
      el('button', { id: 'clear-filters', textContent: 'clear filters', onclick: clearFilters }),
      el('h2', {}, 'Curate'),
      el('button', { id: 'tick-filter', textContent: 'tick the current filter', onclick: tickFilter }),
      el('button', { id: 'untick-all', textContent: 'untick all', onclick: () => { state.ticked.clear(); update(); } }),
      field('score recorded', ui.exportBy),
      el('button', { id: 'export-ticked', textContent: 'export ticked', onclick: () => exportRows([...state.ticked]) }),
      el('button', { id: 'export-filter', textContent: 'export the current filter',
        onclick: () => exportRows(Array.from(state.filtered)) }),
      el('p', { id: 'export-status', className: 'note' }));
  }

  function clearFilters() {
    for (const control of [ui.label, ui.pred, ui.correct, ui.tickedFilter]) control.value = '';
    ui.rangeMin.value = ''; ui.rangeMax.value = ''; ui.search.value = '';
    state.brush = null; state.only = null;
    // A fresh chart drops the drawn brush with the filter.
    delete ui.scatter.dataset.rendered;
    if (!ui.panels.scatter.hidden) drawScatter();
    update();
  }

  function tickFilter() {
    for (const r of state.filtered) state.ticked.add(r);
    update();
  }

  // ---- filtering and sorting ----------------------------------------------------------
  function currentRows() {
    const d = state.data, n = state.n;
    const label = ui.label.value === '' ? -2 : Number(ui.label.value);
    const pred = ui.pred.value === '' ? -2 : Number(ui.pred.value);
    const correct = ui.correct.value;
    const range = state.values[ui.rangeColumn.value];
    const lo = ui.rangeMin.value === '' ? -Infinity : Number(ui.rangeMin.value);
    const hi = ui.rangeMax.value === '' ? Infinity : Number(ui.rangeMax.value);
    const ticked = ui.tickedFilter.value;
    const search = ui.search.value.toLowerCase();
    const brush = state.brush;
    const out = new Uint32Array(n);
    let count = 0;
    for (let r = 0; r < n; ++r) {
      if (label !== -2 && state.label[r] !== label) continue;
      if (pred !== -2 && state.pred[r] !== pred) continue;
      if (correct && (state.label[r] === state.pred[r]) !== (correct === 'right')) continue;
      const v = range[r];
      if (v < lo || v > hi) continue;
      if (ticked && state.ticked.has(r) !== (ticked === 'ticked')) continue;
      if (search && !d.path[r].toLowerCase().includes(search)) continue;
      if (brush) {
        const x = state.values[brush.x][r], y = state.values[brush.y][r];
        if (x < brush.x0 || x > brush.x1 || y < brush.y0 || y > brush.y1) continue;
      }
      if (state.only && !state.only.has(r)) continue;
      out[count++] = r;
    }
    const rows = out.slice(0, count);
    const column = ui.sortColumn.value, sign = ui.sortDir.value === 'asc' ? 1 : -1;
    const key = column === 'id' ? d.id : state.values[column];
    // Ties fall back to the id, ascending, as `select` orders them.
    rows.sort((a, b) => (key[a] !== key[b] ? sign * (key[a] - key[b]) : d.id[a] - d.id[b]));
    return rows;
  }

  function update() {
    state.filtered = currentRows();
    const rows = state.filtered;
    let right = 0;
    if (state.data.labels) for (const r of rows) right += state.label[r] === state.pred[r] ? 1 : 0;
    ui.count.textContent = rows.length.toLocaleString('en') + ' of ' + state.n.toLocaleString('en') + ' images';
    ui.precision.textContent = state.data.labels
      ? 'precision ' + (rows.length ? (right / rows.length).toFixed(4) : '—') + ' (' + right + ' right)'
      : 'no labels';
    ui.tickedCount.textContent = state.ticked.size + ' ticked';
    const extra = document.getElementById('extra-filters');
    extra.textContent = '';
    if (state.brush)
      extra.append(el('p', { className: 'note', id: 'brush-note' },
        'brushed: ' + state.brush.x + ' in [' + fmt(state.brush.x0) + ', ' + fmt(state.brush.x1) + '], ' +
        state.brush.y + ' in [' + fmt(state.brush.y0) + ', ' + fmt(state.brush.y1) + ']'));
    if (state.only) extra.append(el('p', { className: 'note', id: 'only-note' }, 'only: ' + state.onlyName));
    ui.gridSpacer.dataset.count = String(rows.length);
    ui.grid.scrollTop = 0;
    renderGrid(true);
  }

  // ---- the virtual grid ---------------------------------------------------------------
  const cells = new Map();  // position in the filtered list -> element
  function cell(r) {
    const d = state.data;
    const tick = el('input', { type: 'checkbox', className: 'tick', checked: state.ticked.has(r), title: 'tick' });
    tick.addEventListener('click', (event) => {
      event.stopPropagation();
      if (tick.checked) state.ticked.add(r); else state.ticked.delete(r);
      ui.tickedCount.textContent = state.ticked.size + ' ticked';
    });
    const wrong = d.labels && state.label[r] !== state.pred[r];
    const image = d.pixels
      ? el('img', { src: '/api/thumb?row=' + r, alt: '', decoding: 'async', draggable: false })
      : el('div', { className: 'noimage', textContent: '#' + d.id[r] });
    const column = ui.sortColumn.value === 'id' ? d.columns[0] : ui.sortColumn.value;
    return el('div', { className: 'cell' + (wrong ? ' wrong' : ''), dataset: { row: String(r) },
      onclick: () => openDetail(r) },
    image, tick,
    el('div', { className: 'caption' }, d.classes[state.pred[r]] ?? String(state.pred[r])),
    el('div', { className: 'value' }, fmt(state.values[column][r])));
  }

  function renderGrid(reset) {
    if (reset) { for (const node of cells.values()) node.remove(); cells.clear(); }
    const grid = ui.grid, rows = state.filtered;
    const columns = Math.max(1, Math.floor(grid.clientWidth / CELL_W));
    ui.gridSpacer.style.height = Math.ceil(rows.length / columns) * CELL_H + 'px';
    const first = Math.max(0, Math.floor(grid.scrollTop / CELL_H) - OVERSCAN) * columns;
    const last = Math.min(rows.length, (Math.ceil((grid.scrollTop + grid.clientHeight) / CELL_H) + OVERSCAN) * columns);
    for (const [position, node] of cells)
      if (position < first || position >= last) { node.remove(); cells.delete(position); }
    for (let p = first; p < last; ++p) {
      if (cells.has(p)) continue;
      const node = cell(rows[p]);
      node.style.transform = 'translate(' + (p % columns) * CELL_W + 'px,' + Math.floor(p / columns) * CELL_H + 'px)';
      ui.gridSpacer.append(node);
      cells.set(p, node);
    }
  }

  // ---- one image ----------------------------------------------------------------------
  async function openDetail(r) {
    state.detailRow = r;
    const panel = ui.detail;
    panel.hidden = false;
    panel.textContent = '';
    panel.append(el('p', { className: 'note' }, 'loading…'));
    let info;
    try {
      info = await getJson('/api/row?row=' + r);
    } catch (error) {
      panel.textContent = String(error.message);
      return;
    }
    if (state.detailRow !== r) return;
    panel.textContent = '';
    const tick = el('input', { type: 'checkbox', id: 'detail-tick', checked: state.ticked.has(r) });
    tick.addEventListener('change', () => {
      if (tick.checked) state.ticked.add(r); else state.ticked.delete(r);
      update();
    });
    const scores = el('table', { id: 'detail-scores' },
      el('thead', {}, el('tr', {}, el('th', {}, 'score'), el('th', {}, 'value'), el('th', {}, 'rank'))));
    const body = el('tbody');
    for (const s of info.scores)
      body.append(el('tr', {}, el('td', {}, s.column), el('td', {}, fmt(s.value)),
        el('td', {}, s.rank.toLocaleString('en') + ' of ' + info.rows.toLocaleString('en'))));
    scores.append(body);
    panel.append(
      el('button', { id: 'detail-close', className: 'close', textContent: '×', title: 'close',
        onclick: () => { panel.hidden = true; state.detailRow = null; } }),
      el('h2', { id: 'detail-title' }, 'image ' + info.id),
      state.data.pixels ? el('img', { id: 'detail-image', src: '/api/image?row=' + r, alt: '' }) : '',
      el('p', { id: 'detail-path', className: 'path' }, info.path),
      el('p', {}, 'true class: ', el('b', {}, info.label_name ?? 'unknown'), ' · predicted: ',
        el('b', {}, info.pred_name),
        info.correct === null ? '' : el('span', { className: info.correct ? 'right' : 'wrong' },
          info.correct ? ' (right)' : ' (wrong)')),
      el('label', {}, tick, ' ticked'),
      scores);
    const taps = el('div', { id: 'detail-terms' });
    panel.append(taps);
    if (info.taps.length) {
      showTerms(taps, info.taps, 'in the scores file');
    } else if (state.data.profiles) {
      taps.append(el('p', { className: 'note' }, 'computing the per-tap terms…'));
      getJson('/api/terms?row=' + r).then((computed) => {
        if (state.detailRow === r) showTerms(taps, computed.taps, 'computed now with the default overlap and floor');
      }, (error) => { taps.textContent = error.message; });
    } else {
      taps.append(el('p', { className: 'note', id: 'detail-no-taps' },
        'no per-tap terms in this scores file (score with --per-tap, or serve with --model and --profiles)'));
    }
    if (state.data.neighbours) {
      const near = el('div', { id: 'detail-neighbours' });
      panel.append(near);
      getJson('/api/neighbours?row=' + r).then((n) => {
        if (state.detailRow !== r) return;
        near.append(el('h3', {}, 'Nearest labelled images (' + n.k + ', the knn score\'s features)'));
        const strip = el('div', { className: 'strip' });
        for (const m of n.neighbours)
          strip.append(el('div', { className: 'mini', title: 'id ' + m.id + ', distance ' + fmt(m.distance) },
            m.image ? el('img', { src: m.image, alt: '' }) : el('span', {}, '#' + m.id),
            el('span', {}, m.label)));
        near.append(strip);
      }, (error) => { near.textContent = error.message; });
    }
    if (state.data.model) {
      const maps = el('div', { id: 'detail-maps' });
      panel.append(maps);
      getJson('/api/features?row=' + r).then((f) => {
        if (state.detailRow !== r) return;
        maps.append(el('h3', {}, 'First layer (' + f.tap + '): ' + f.channels_shown + ' feature maps'));
        const grid = el('div', { className: 'maps' });
        for (const m of f.maps)
          grid.append(el('img', { src: m.image, alt: '', title: 'channel ' + m.channel + ', max ' + fmt(m.max) }));
        maps.append(grid);
      }, (error) => { maps.textContent = error.message; });
    }
  }

  // Per-tap terms as bars; the overlap of the image's mask with its class's mask is e^term
  // (the floor where the overlap is below it).
  function showTerms(container, taps, source) {
    container.textContent = '';
    const total = taps.reduce((sum, t) => sum + t.term, 0);
    const least = Math.min(...taps.map((t) => t.term), -1e-9);
    const list = el('div', { id: 'detail-taps' });
    for (const t of taps) {
      const fill = el('span', { className: 'fill' });
      fill.style.width = (100 * t.term / least).toFixed(1) + '%';
      list.append(el('div', { className: 'tap' }, el('span', { className: 'name' }, t.tap),
        el('span', { className: 'bar' }, fill), el('span', { className: 'term' }, fmt(t.term)),
        el('span', { className: 'overlap' }, (100 * Math.exp(t.term)).toFixed(1) + '%')));
    }
    container.append(el('h3', {}, 'Per-tap terms of the image score (sum ' + fmt(total) + ')'), list,
      el('p', { className: 'note' }, 'term = ln(max(overlap, floor)), ' + source + '; the percentage is the overlap ' +
        'of this image\'s active neurons with its class\'s mask in that layer; the longest bar pulls the score down most'));
  }

  // ---- exporting ----------------------------------------------------------------------
  async function exportRows(rows) {
    const status = document.getElementById('export-status');
    if (!rows.length) { status.textContent = 'nothing to export'; return; }
    const response = await fetch('/api/export?by=' + encodeURIComponent(ui.exportBy.value),
      { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: rows.join('\n') });
    if (!response.ok) { status.textContent = (await response.json()).error; return; }
    const url = URL.createObjectURL(await response.blob());
    const link = el('a', { href: url, download: 'selection.csv' });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    status.textContent = rows.length + ' images exported by ' + ui.exportBy.value;
  }

  // ---- two scores against each other --------------------------------------------------
  function columnSelect(id, value) {
    const s = el('select', { id });
    state.data.columns.concat(state.data.taps).forEach((c) => s.append(option(c, c)));
    s.value = value;
    return s;
  }

  function drawScatter() {
    const x = ui.scatterX.value, y = ui.scatterY.value;
    const step = Math.max(1, Math.ceil(state.n / SCATTER_POINTS));
    const points = [];
    for (let r = 0; r < state.n; r += step)
      points.push({ x: state.values[x][r], y: state.values[y][r],
        prediction: state.data.labels ? (state.label[r] === state.pred[r] ? 'right' : 'wrong') : 'unknown' });
    const spec = {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      width: 560, height: 420, data: { values: points },
      params: [{ name: 'brush', select: { type: 'interval', encodings: ['x', 'y'] } }],
      mark: { type: 'point', filled: true, size: 14 },
      encoding: {
        x: { field: 'x', type: 'quantitative', title: x, scale: { zero: false } },
        y: { field: 'y', type: 'quantitative', title: y, scale: { zero: false } },
        color: { field: 'prediction', type: 'nominal', scale: { domain: ['right', 'wrong', 'unknown'],
          range: ['#4c78a8', '#e45756', '#888888'] } },
        opacity: { value: 0.6 },
      },
    };
    ui.scatter.textContent = '';
    const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'canvas', container: ui.scatter, hover: false });
    view.addSignalListener('brush', (_, value) => {
      // Each range comes in the order it was dragged.
      state.brush = value && value.x && value.y
        ? { x, y, x0: Math.min(...value.x), x1: Math.max(...value.x), y0: Math.min(...value.y), y1: Math.max(...value.y) }
        : null;
      update();
    });
    view.runAsync().then(() => { ui.scatter.dataset.rendered = 'true'; });
    ui.scatterNote.textContent = (step > 1 ? 'every ' + step + 'th image drawn (' + points.length + '); ' : '') +
      'drag a rectangle to filter the grid by both scores; double-click to clear';
  }

  // Percentile ranks (0 lowest .. 1 highest) of every row by a column.
  function percentiles(column) {
    const v = state.values[column], order = Array.from({ length: state.n }, (_, r) => r);
    order.sort((a, b) => v[a] - v[b]);
    const out = new Float64Array(state.n);
    order.forEach((r, k) => { out[r] = state.n > 1 ? k / (state.n - 1) : 0.5; });
    return out;
  }

  function drawDisagreements() {
    const a = ui.disA.value, b = ui.disB.value, share = Number(ui.disShare.value);
    const pa = percentiles(a), pb = percentiles(b);
    const list = ui.disList;
    list.textContent = '';
    const sides = [[a, b, pa, pb], [b, a, pb, pa]];
    const all = new Set();
    for (const [high, low, ph, pl] of sides) {
      const rows = [];
      for (let r = 0; r < state.n; ++r) if (ph[r] >= 1 - share && pl[r] <= share) rows.push(r);
      rows.sort((p, q) => (ph[q] - pl[q]) - (ph[p] - pl[p]));
      rows.forEach((r) => all.add(r));
      let wrong = 0;
      if (state.data.labels) for (const r of rows) wrong += state.label[r] !== state.pred[r] ? 1 : 0;
      const section = el('section', { className: 'disagree' },
        el('h3', {}, rows.length + ' images in the top ' + Math.round(share * 100) + '% by ' + high +
          ' and the bottom ' + Math.round(share * 100) + '% by ' + low +
          (state.data.labels ? ' (' + wrong + ' wrong)' : '')));
      const strip = el('div', { className: 'strip' });
      for (const r of rows.slice(0, DISAGREE_SHOWN))
        strip.append(el('div', { className: 'mini', dataset: { row: String(r) }, onclick: () => openDetail(r),
          title: state.data.path[r] },
        state.data.pixels ? el('img', { src: '/api/thumb?row=' + r, alt: '' }) : el('span', {}, '#' + state.data.id[r]),
        el('span', {}, (ph[r] * 100).toFixed(0) + ' / ' + (pl[r] * 100).toFixed(0))));
      section.append(strip);
      list.append(section);
    }
    ui.disShow.onclick = () => {
      state.only = all;
      state.onlyName = 'the ' + all.size + ' disagreements of ' + a + ' and ' + b;
      showTab('grid');
      update();
    };
  }

  // ---- page ---------------------------------------------------------------------------
  function showTab(name) {
    for (const [tab, panel] of Object.entries(ui.panels)) {
      panel.hidden = tab !== name;
      ui.tabs[tab].classList.toggle('active', tab === name);
    }
    if (name === 'grid') renderGrid(false);
    if (name === 'scatter' && !ui.scatter.dataset.rendered) drawScatter();
    if (name === 'disagreements') drawDisagreements();
  }

  async function start() {
    const d = await getJson('/api/table');
    state.data = d;
    state.n = d.rows;
    for (const [column, values] of Object.entries(d.values))
      state.values[column] = Float64Array.from(values, (v) => (v === null ? NaN : v));
    state.label = Int32Array.from(d.label, (v) => (v === null ? -1 : v));
    state.pred = Int32Array.from(d.pred);
    document.title = 'imagescore explorer: ' + d.title;

    ui.count = el('span', { id: 'count' });
    ui.precision = el('span', { id: 'precision' });
    ui.tickedCount = el('span', { id: 'ticked-count' });
    ui.gridSpacer = el('div', { id: 'grid-spacer' });
    ui.grid = el('div', { id: 'grid' }, ui.gridSpacer);
    ui.grid.addEventListener('scroll', () => requestAnimationFrame(() => renderGrid(false)));
    // The window, or the detail panel opening beside it, changes the columns that fit.
    let width = 0;
    new ResizeObserver(() => {
      if (ui.grid.clientWidth === width || !state.data) return;
      width = ui.grid.clientWidth;
      renderGrid(true);
    }).observe(ui.grid);
    ui.detail = el('aside', { id: 'detail', hidden: true });

    const first = d.columns[0], second = d.columns[1] ?? d.columns[0];
    const preferred = d.columns.includes('image_score') && d.columns.includes('msp') ? ['image_score', 'msp'] : [first, second];
    ui.scatterX = columnSelect('scatter-x', preferred[0]);
    ui.scatterY = columnSelect('scatter-y', preferred[1]);
    ui.scatter = el('div', { id: 'scatter', className: 'chart' });
    ui.scatterNote = el('p', { className: 'note' });
    for (const s of [ui.scatterX, ui.scatterY])
      s.addEventListener('change', () => { state.brush = null; delete ui.scatter.dataset.rendered; drawScatter(); update(); });
    ui.disA = columnSelect('dis-a', preferred[0]);
    ui.disB = columnSelect('dis-b', preferred[1]);
    ui.disShare = el('select', { id: 'dis-share' }, option('0.1', '10%'), option('0.2', '20%'), option('0.3', '30%'));
    ui.disShare.value = '0.2';
    ui.disList = el('div', { id: 'dis-list' });
    ui.disShow = el('button', { id: 'dis-show', textContent: 'show them in the grid' });
    for (const s of [ui.disA, ui.disB, ui.disShare]) s.addEventListener('change', drawDisagreements);

    ui.panels = {
      grid: ui.grid,
      scatter: el('div', { className: 'panel' }, el('div', { className: 'row' }, 'x ', ui.scatterX, ' y ', ui.scatterY),
        ui.scatter, ui.scatterNote),
      disagreements: el('div', { className: 'panel' },
        el('div', { className: 'row' }, 'high by ', ui.disA, ' low by ', ui.disB, ' share ', ui.disShare, ' ', ui.disShow),
        ui.disList),
    };
    ui.tabs = {};
    const tabs = el('nav', { id: 'tabs' });
    for (const name of Object.keys(ui.panels)) {
      ui.tabs[name] = el('button', { id: 'tab-' + name, textContent: name, onclick: () => showTab(name) });
      tabs.append(ui.tabs[name]);
    }
    app.append(
      el('header', {}, el('h1', {}, 'imagescore explorer'), el('span', { className: 'title' }, d.title),
        el('span', { className: 'stats' }, ui.count, ' · ', ui.precision, ' · ', ui.tickedCount)),
      el('div', { id: 'body' }, buildControls(d),
        el('main', {}, tabs, ...Object.values(ui.panels)), ui.detail));
    showTab('grid');
    update();
    document.body.dataset.ready = 'true';
  }

  start().catch((error) => {
    app.textContent = 'the explorer could not start: ' + error.message;
    document.body.dataset.ready = 'failed';
  });
})();
