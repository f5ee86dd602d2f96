// The report page: builds every section from the JSON in #report-data. Strings from the
// data reach the page only as text nodes (textContent, attribute values), never as HTML.
(function () {
  'use strict';
  const data = JSON.parse(document.getElementById('report-data').textContent);
  const root = document.getElementById('report');
  const charts = [];

  // el('p', {className: 'x'}, 'text', childNode, ...): strings become text nodes.
  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes || {})) {
      if (key === 'className') node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === 'string' ? document.createTextNode(child) : child);
    }
    return node;
  }

  function fixed(value, decimals) {
    return value === null || value === undefined ? '–' : Number(value).toFixed(decimals === undefined ? 4 : decimals);
  }

  function pValue(value) {
    if (value === null || value === undefined) return '–';
    return value < 0.001 ? Number(value).toExponential(1) : Number(value).toFixed(3);
  }

  function section(id, title, intro) {
    const node = el('section', {id: id}, el('h2', {}, title));
    if (intro) node.append(el('p', {className: 'intro'}, intro));
    root.append(node);
    nav.append(el('li', {}, el('a', {href: '#' + id}, title)));
    return node;
  }

  function table(headers, rows, className) {
    const head = el('tr', {}, ...headers.map((h) => el('th', {}, h)));
    const body = rows.map((cells) => el('tr', {}, ...cells.map((c) => el('td', {}, c))));
    return el('table', {className: className || ''}, el('thead', {}, head), el('tbody', {}, ...body));
  }

  // A Vega-Lite chart drawn as SVG; the browser test waits for data-rendered on each.
  function chart(parent, label, spec) {
    const node = el('div', {className: 'chart', 'data-label': label});
    parent.append(node);
    spec.config = Object.assign({font: 'system-ui, sans-serif', view: {stroke: '#ddd'}}, spec.config || {});
    charts.push(vegaEmbed(node, spec, {renderer: 'svg', actions: false, mode: 'vega-lite'})
      .then(() => { node.dataset.rendered = 'true'; })
      .catch((error) => {
        node.append(el('p', {className: 'error'}, 'This chart could not be drawn: ' + error));
        console.error(error);
      }));
  }

  // ---- header -------------------------------------------------------------------
  root.append(el('h1', {}, 'imagescore report'));
  root.append(el('p', {className: 'source'}, 'Source: ', el('code', {}, String(data.title))));
  const nav = el('ul', {className: 'nav'});
  root.append(el('nav', {}, nav));

  // ---- study summary ------------------------------------------------------------
  if (data.study) {
    const s = data.study;
    const node = section('study', 'Study summary',
      'The model trained on the labelled part scores the additional part; each score selects the top share of ' +
      'every predicted class. Precision: share of right pseudo-labels among the selected. AUROC: how well the ' +
      'score tells right from wrong pseudo-labels.');
    node.append(table(['labelled images', 'additional images', 'test accuracy', 'pseudo-label accuracy', 'reference test accuracy'],
      [[String(s.training_images), String(s.additional_images), fixed(s.test_accuracy), fixed(s.pseudo_label_accuracy),
        fixed(s.reference_test_accuracy)]]));
    node.append(table(['score', 'precision of the selected', 'AUROC'],
      s.scores.map((r) => [r.score, fixed(r.precision), fixed(r.auroc)])));
  }

  // ---- analysis: intervals, detection metrics, risk-coverage ---------------------
  if (data.analysis) {
    const a = data.analysis;
    // [key in the analysis, label]: a study scores the additional part of its training
    // split (the pool), whose accuracy is that of the pseudo-labels.
    const sets = [['test', data.study ? 'pool (additional part)' : 'scored images']];
    if (a.training) sets.push(['training', 'labelled (training part)']);
    const accuracyName = (key) => (key === 'test' && data.study ? 'pseudo-label accuracy ' : 'accuracy ');
    const counts = sets.map(([key, label]) => label + ': ' + a[key].images + ' images, ' + accuracyName(key) +
      fixed(a[key].accuracy)).join('; ');
    const intervals = section('intervals', 'Accuracy and share per score interval',
      'For each score, the images are grouped into ' + (a.binning === 'width' ? 'equal-width' : 'equal-count (quantile)') +
      ' intervals of the score. Left: labelling accuracy in each interval (a trustworthy score rises from left to ' +
      'right). Right: the share of images in each interval. ' + counts + '.');
    const grid = el('div', {className: 'chart-grid'});
    intervals.append(grid);
    for (const column of a.columns) {
      const values = [];
      column.bins.forEach((bin, index) => {
        const interval = Number(bin.lower).toPrecision(3) + ' – ' + Number(bin.upper).toPrecision(3);
        for (const [key, label] of sets) {
          const b = bin[key];
          values.push({index: index, interval: interval, set: label, accuracy: b.accuracy, share: b.share, images: b.images});
        }
      });
      const x = {field: 'interval', type: 'ordinal', sort: {field: 'index'}, title: column.name + ' interval',
        axis: {labelAngle: -40}};
      const color = {field: 'set', type: 'nominal', title: 'images', scale: {domain: sets.map(([, label]) => label)}};
      chart(grid, 'accuracy and share per interval of ' + column.name, {
        title: column.name,
        data: {values: values},
        hconcat: [
          {width: 230, height: 160, mark: {type: 'line', point: true},
            transform: [{filter: 'datum.accuracy !== null'}],
            encoding: {x: x, y: {field: 'accuracy', type: 'quantitative', title: 'accuracy', scale: {domain: [0, 1]}}, color: color}},
          {width: 230, height: 160, mark: 'bar',
            encoding: {x: x, xOffset: {field: 'set'}, y: {field: 'share', type: 'quantitative', title: 'share of images',
              axis: {format: '%'}}, color: color}},
        ],
      });
    }

    const detection = section('detection', 'Misclassification detection',
      'How well each score separates right from wrong predictions on the ' + a.test.images + ' ' +
      (data.study ? 'images of the pool (right or wrong pseudo-labels)' : 'scored images') + ', with ' +
      Math.round(a.bootstrap.confidence * 100) + '% bootstrap intervals (' + a.bootstrap.resamples + ' resamples, seed ' +
      a.bootstrap.seed + '). Higher is better for AUROC, AUPR of errors and precision; lower for AURC, E-AURC and FPR.');
    const metricNames = [['auroc', 'AUROC'], ['aupr_errors', 'AUPR (errors)'], ['aurc', 'AURC'], ['excess_aurc', 'E-AURC'],
      ['fpr_at_95_tpr', 'FPR at 95% TPR'], ['precision_top10', 'precision top 10%'], ['precision_top30', 'precision top 30%'],
      ['precision_top50', 'precision top 50%']];
    const rows = a.columns.map((column) => [column.name].concat(metricNames.map(([key]) => {
      const m = column.metrics[key];
      return fixed(m.value) + ' [' + fixed(m.lower, 3) + ', ' + fixed(m.upper, 3) + ']';
    })));
    detection.append(el('div', {className: 'scroll'}, table(['score'].concat(metricNames.map(([, title]) => title)), rows, 'metrics')));

    const curves = [];
    for (const column of a.columns) {
      column.risk_coverage.coverage.forEach((coverage, i) => {
        curves.push({score: column.name, coverage: coverage, risk: column.risk_coverage.risk[i]});
      });
    }
    const rc = section('risk-coverage', 'Risk-coverage curves',
      'Keep the most confident share of the ' + (data.study ? 'pool' : 'scored images') +
      ' by each score (coverage) and count the errors among them ' +
      '(risk). The area under each curve is the AURC.');
    chart(rc, 'risk-coverage curves', {
      width: 520, height: 300, data: {values: curves}, mark: 'line',
      encoding: {x: {field: 'coverage', type: 'quantitative', axis: {format: '%'}},
        y: {field: 'risk', type: 'quantitative', title: 'risk (error rate)'},
        color: {field: 'score', type: 'nominal', sort: a.columns.map((c) => c.name)}},
    });
  }

  // ---- gallery ------------------------------------------------------------------
  function card(item, by) {
    const figure = el('figure', {className: 'card' + (item.correct === false ? ' wrong' : '')});
    if (item.image) figure.append(el('img', {src: item.image, alt: item.path}));
    const score = item.scores.find((s) => s.column === by);
    const caption = el('figcaption', {},
      el('div', {className: 'path'}, item.path),
      el('div', {}, 'label ' + (item.label === null ? '?' : item.label) + ' · predicted ' + item.pred),
      el('div', {className: 'score'}, by + ' ' + Number(score.value).toPrecision(4)));
    const others = item.scores.filter((s) => s.column !== by).map((s) => s.column + ' ' + Number(s.value).toPrecision(3));
    caption.append(el('div', {className: 'others'}, others.join(', ')));
    figure.append(caption);
    return figure;
  }

  if (data.gallery) {
    const g = data.gallery;
    const node = section('gallery', 'Highest- and lowest-scored images',
      'Per predicted class, the ' + g.count + ' images with the highest and the lowest ' + g.by + '. A red frame marks a ' +
      'wrong prediction.' + (g.pixels ? '' : ' No pixels: give --data to see the images.'));
    for (const c of g.classes) {
      node.append(el('h3', {}, 'Predicted ' + c.class + ' (' + c.candidates + ' images)'));
      node.append(el('div', {className: 'row-title'}, 'highest'), el('div', {className: 'cards'}, ...c.highest.map((i) => card(i, g.by))));
      if (c.lowest.length)
        node.append(el('div', {className: 'row-title'}, 'lowest'), el('div', {className: 'cards'}, ...c.lowest.map((i) => card(i, g.by))));
    }
  }

  // ---- feature maps -------------------------------------------------------------
  if (data.features) {
    const f = data.features;
    const node = section('features', 'Feature maps of the first layer',
      'Activations of tap ' + f.tap + ' (' + f.shape.join(' × ') + ') for one image, each channel on the same grey scale ' +
      '(black ' + fixed(f.range[0], 3) + ', white ' + fixed(f.range[1], 3) + ').');
    node.append(el('figure', {className: 'card input'}, el('img', {src: f.image, alt: f.path}),
      el('figcaption', {}, el('div', {className: 'path'}, f.path),
        el('div', {}, 'id ' + f.id + ' · label ' + (f.label === null ? '?' : f.label) + ' · predicted ' + f.pred))));
    node.append(el('div', {className: 'maps'}, ...f.maps.map((m) => el('figure', {className: 'map'},
      el('img', {src: m.image, alt: 'channel ' + m.channel}), el('figcaption', {}, 'channel ' + m.channel)))));
  }

  // ---- detection: selected and rejected images with their boxes -----------------
  // The thumbnail is stretched over the image's own pixel grid (the SVG's viewBox), so
  // boxes are drawn in the image's coordinates. Names and numbers are text nodes.
  function svgNode(tag, attributes) {
    const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
    return node;
  }

  function boxCard(item) {
    const svg = svgNode('svg', {viewBox: '0 0 ' + item.width + ' ' + item.height, class: 'boxes-view',
      role: 'img', 'aria-label': item.path});
    svg.append(svgNode('image', {href: item.image, x: 0, y: 0, width: item.width, height: item.height,
      preserveAspectRatio: 'none'}));
    // Stroke and text sizes in image pixels, scaled to look the same on every image.
    const unit = Math.max(item.width, item.height) / 160;
    for (const b of item.boxes) {
      svg.append(svgNode('rect', {x: b.xmin, y: b.ymin, width: b.xmax - b.xmin, height: b.ymax - b.ymin,
        class: b.kept ? 'box kept' : 'box below', 'stroke-width': 1.5 * unit,
        'stroke-dasharray': b.kept ? 'none' : (3 * unit) + ' ' + (2 * unit)}));
      const label = svgNode('text', {x: b.xmin + unit, y: b.ymin + 8 * unit, 'font-size': 8 * unit,
        'stroke-width': 0.6 * unit, class: b.kept ? 'box-label kept' : 'box-label below'});
      label.textContent = b.class + ' ' + Number(b.score).toFixed(2);
      svg.append(label);
    }
    const kept = item.boxes.filter((b) => b.kept).length;
    return el('figure', {className: 'card boxes-card'}, svg,
      el('figcaption', {},
        el('div', {className: 'path'}, item.path),
        el('div', {className: 'score'}, data.boxes.by + ' ' + Number(item.score).toPrecision(4)),
        el('div', {className: 'others'}, item.predicted
          ? kept + ' of ' + item.boxes.length + ' boxes at confidence ≥ ' + data.boxes.min_confidence
          : 'no predictions for this image')));
  }

  if (data.boxes) {
    const d = data.boxes;
    const node = section('boxes', 'Detections: selected and rejected images',
      d.selected_count + ' images selected and ' + d.rejected_count + ' rejected. Shown: the highest by ' + d.by +
      ' of each, with the predicted boxes (solid: confidence ≥ ' + d.min_confidence + ', exported as pseudo-labels; ' +
      'dashed: below, dropped).');
    node.append(el('div', {className: 'row-title'}, 'selected'), el('div', {className: 'cards'}, ...d.selected.map(boxCard)));
    node.append(el('div', {className: 'row-title'}, 'rejected'), el('div', {className: 'cards'}, ...d.rejected.map(boxCard)));
  }

  // ---- self-training ------------------------------------------------------------
  // How many pseudo-labels each selecting arm added per epoch, and how many were right.
  function addedCharts(node, rows, note) {
    const added = rows.filter((r) => r.epoch > 0 && r.added !== null && r.added_precision !== null);
    if (!added.length) return;
    const perRound = (y, title) => ({width: 420, height: 180, data: {values: added}, mark: {type: 'line', point: true},
      encoding: {x: {field: 'epoch', type: 'quantitative', axis: {tickMinStep: 1}}, color: {field: 'arm', type: 'nominal'},
        y: {aggregate: 'mean', field: y, type: 'quantitative', title: title, scale: {zero: false}}}});
    chart(node, 'pseudo-labels added per epoch' + note, perRound('added', 'images added'));
    chart(node, 'precision of the added pseudo-labels' + note, perRound('added_precision', 'precision'));
  }
  if (data.selftrain) {
    const st = data.selftrain;
    if (st.epochs) {
      const node = section('epochs', 'Accuracy per epoch of self-training',
        'Epoch 0 is the base model. Per-class protocol: the accuracy of the class whose images are added; joint ' +
        'protocol: the test accuracy. One line per arm.');
      for (const protocol of ['per-class', 'joint']) {
        const rows = st.epochs.filter((r) => r.protocol === protocol);
        if (!rows.length) continue;
        node.append(el('h3', {}, protocol === 'joint' ? 'Joint protocol' : 'Per-class protocol'));
        const line = {mark: {type: 'line', point: true},
          encoding: {x: {field: 'epoch', type: 'quantitative', axis: {tickMinStep: 1}},
            y: {field: 'accuracy', type: 'quantitative', scale: {zero: false}},
            color: {field: 'arm', type: 'nominal'}}};
        const seeds = new Set(rows.map((r) => r.seed));
        if (seeds.size > 1) {
          // Several seeds: the mean over seeds per arm, with the band from the lowest to the
          // highest seed; then what the arms added per selection round, and how precisely.
          const encoding = {x: {field: 'epoch', type: 'quantitative', axis: {tickMinStep: 1}},
            color: {field: 'arm', type: 'nominal'}};
          // Per-class protocol: each seed's mean over the classes run, then over seeds.
          const points = [];
          const groups = new Map();
          for (const r of rows) {
            const key = [r.arm, r.epoch, r.seed].join('|');
            if (!groups.has(key)) groups.set(key, {arm: r.arm, epoch: r.epoch, seed: r.seed, values: []});
            if (r.accuracy !== null) groups.get(key).values.push(r.accuracy);
          }
          for (const g of groups.values())
            points.push({arm: g.arm, epoch: g.epoch, seed: g.seed, accuracy: g.values.reduce((a, b) => a + b, 0) / g.values.length});
          chart(node, 'accuracy per epoch over seeds, ' + protocol + ' protocol', {width: 420, height: 240,
            data: {values: points}, encoding: encoding, layer: [
              {mark: {type: 'area', opacity: 0.2},
                encoding: {y: {aggregate: 'min', field: 'accuracy', type: 'quantitative', title: 'accuracy', scale: {zero: false}},
                  y2: {aggregate: 'max', field: 'accuracy'}}},
              {mark: {type: 'line', point: true}, encoding: {y: {aggregate: 'mean', field: 'accuracy', type: 'quantitative'}}}]});
          node.append(el('p', {}, seeds.size + ' seeds: the line is the mean over seeds, the band runs from the lowest ' +
            'to the highest seed' + (protocol === 'joint' ? '.' : ' (each seed: the mean over the classes run).')));
          addedCharts(node, rows, ' (mean over seeds)');
        } else if (protocol === 'joint') {
          chart(node, 'accuracy per epoch, joint protocol', Object.assign({width: 420, height: 240, data: {values: rows}}, line));
          addedCharts(node, rows, '');
        } else {
          const classes = st.stats ? st.stats.classes : undefined;
          chart(node, 'accuracy per epoch, per-class protocol', {data: {values: rows},
            facet: {field: 'class', type: 'nominal', sort: classes, title: null}, columns: 5,
            spec: Object.assign({width: 150, height: 110}, line),
            resolve: {scale: {y: 'independent'}}});
        }
      }
    }
    if (st.stats && st.stats.over_seeds) {
      const o = st.stats.over_seeds;
      const node = section('seeds', 'Self-training over seeds',
        'Final accuracy (%) of each arm per seed, and its paired difference to the baseline of the same seed with a ' +
        'percentile bootstrap interval over the ' + o.seeds.length + ' seeds (which cannot be wider than the seeds\' own ' +
        'spread), and the seeds in which the arm won.');
      const pct = (v) => (v === null ? '–' : (100 * v).toFixed(2));
      node.append(table(['protocol', 'arm', 'mean', 'per seed', 'difference', 'interval', 'wins', 'precision of added'],
        o.rows.map((r) => [r.protocol, r.arm, pct(r.mean), r.accuracy.map(pct).join(', '),
          r.arm === 'baseline' ? '' : pct(r.mean_difference),
          r.arm === 'baseline' ? '' : '[' + pct(r.low) + ', ' + pct(r.high) + ']',
          r.arm === 'baseline' ? '' : r.wins + ' of ' + o.seeds.length,
          r.added ? (r.added_correct / r.added).toFixed(3) : ''])));
    }
    if (st.stats && st.stats.rows.length) {
      const s = st.stats;
      const node = section('stats', 'Self-training statistics',
        'Final test accuracy per class for each arm, the differences, and the p-values of the tests (tables 1-3 of ' +
        'the paper). Image score vs baseline: ' + s.significant_tb + ' classes significant; softmax vs baseline: ' +
        s.significant_sb + '.');
      node.append(el('h3', {}, 'Table 1: image-score arm vs baseline'));
      node.append(table(['class', 'baseline', 'image score', 'difference', 'p-value'],
        s.rows.map((r) => [r.class, fixed(r.baseline), fixed(r.train), fixed(r.diff_tb), pValue(r.p_value_tb)])));
      node.append(el('h3', {}, 'Table 2: softmax arm vs baseline'));
      node.append(table(['class', 'baseline', 'softmax', 'difference', 'p-value'],
        s.rows.map((r) => [r.class, fixed(r.baseline), fixed(r.softmax), fixed(r.diff_sb), pValue(r.p_value_sb)])));
      node.append(el('h3', {}, 'Table 3: image-score arm vs softmax arm'));
      node.append(table(['class', 'image score', 'softmax', 'difference'],
        s.rows.map((r) => [r.class, fixed(r.train), fixed(r.softmax), fixed(r.diff_ts)])));
      if (s.assembly) {
        node.append(el('h3', {}, 'Assembled model'));
        const points = [];
        for (const p of s.assembly) {
          if (p.baseline !== null) points.push({epoch: p.epoch, model: 'baseline', accuracy: p.baseline});
          points.push({epoch: p.epoch, model: 'assembled', accuracy: p.assembled});
        }
        chart(node, 'assembled model vs baseline', {width: 420, height: 220, data: {values: points},
          mark: {type: 'line', point: true},
          encoding: {x: {field: 'epoch', type: 'quantitative', axis: {tickMinStep: 1}},
            y: {field: 'accuracy', type: 'quantitative', scale: {zero: false}}, color: {field: 'model', type: 'nominal'}}});
      }
    }
  }

  Promise.all(charts).then(() => { document.body.dataset.ready = 'true'; });
})();
