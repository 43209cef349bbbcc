/* featviz report: renders the manifest inlined in index.html (report.json).
 * One section at a time, chosen by the address (#classes, #filters/conv2d_1,
 * #activations/14_stop/conv2d_2, #stats/conv2d_2, a unit as #conv2d_2/17), so
 * a run of thousands of pictures only builds what is on screen; pictures load
 * lazily. No network: every picture is a file beside index.html. */
'use strict';
(function () {
  const M = JSON.parse(document.getElementById('manifest').textContent);
  const main = document.getElementById('main');
  const model = M.model || {};
  const labels = model.labels || [];

  /* ---- helpers ---- */
  function el(tag, props, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') e.textContent = v;
      else if (k === 'html') e.innerHTML = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const k of kids.flat()) if (k !== null && k !== undefined && k !== false) e.append(k);
    return e;
  }
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  const label = (c) => (labels[c] ? labels[c] : '');
  const num = (v, d) => (v === null || v === undefined || !isFinite(v) ? '–' : Number(v).toPrecision(d || 4));
  const pct = (v) => (v === null || v === undefined ? '–' : (100 * v).toFixed(v > 0.9995 || v < 0.0005 ? 2 : 1) + '%');
  const prob = (p) => (p >= 0.001 ? p.toFixed(3) : p.toExponential(1));
  const enc = (s) => s.split('/').map(encodeURIComponent).join('/');
  function img(src, alt, cls) {
    return el('img', { src: enc(src), alt: alt || '', loading: 'lazy', decoding: 'async', class: cls });
  }
  /* A picture that opens enlarged; gallery: [{src, caption}], i: its place. */
  function thumb(gallery, i) {
    const g = gallery[i];
    return el('button', { class: 'thumb', type: 'button', title: g.caption, 'aria-label': 'enlarge ' + g.caption,
      onclick: () => lightbox.open(gallery, i) }, img(g.src, g.caption));
  }
  function select(id, options, value, onchange) {
    const s = el('select', { id: id, onchange: () => onchange(s.value) });
    for (const [v, t] of options) s.append(el('option', { value: v, text: t, selected: v === value }));
    return s;
  }
  const section = (title, ...kids) => el('section', {}, el('h2', { text: title }), ...kids);

  /* ---- the lightbox: arrows step through its gallery, Escape closes ---- */
  const lightbox = {
    box: document.getElementById('lightbox'),
    gallery: [], i: 0, back: null,
    open(gallery, i) {
      this.gallery = gallery; this.back = document.activeElement;
      this.box.hidden = false; this.show(i);
      document.getElementById('lb-close').focus();
    },
    show(i) {
      const n = this.gallery.length;
      this.i = (i + n) % n;
      const g = this.gallery[this.i];
      document.getElementById('lb-img').src = enc(g.src);
      document.getElementById('lb-img').alt = g.caption;
      document.getElementById('lb-cap').textContent = g.caption + '  (' + (this.i + 1) + ' of ' + n + ')';
    },
    close() {
      this.box.hidden = true;
      if (this.back && this.back.focus) this.back.focus();
    },
  };
  document.getElementById('lb-prev').onclick = () => lightbox.show(lightbox.i - 1);
  document.getElementById('lb-next').onclick = () => lightbox.show(lightbox.i + 1);
  document.getElementById('lb-close').onclick = () => lightbox.close();
  lightbox.box.addEventListener('click', (e) => { if (e.target === lightbox.box) lightbox.close(); });

  document.addEventListener('keydown', (e) => {
    if (!lightbox.box.hidden) {
      if (e.key === 'ArrowRight') lightbox.show(lightbox.i + 1);
      else if (e.key === 'ArrowLeft') lightbox.show(lightbox.i - 1);
      else if (e.key === 'Escape') lightbox.close();
      else return;
      e.preventDefault();
      return;
    }
    /* in a gallery, arrows move between its pictures (Enter enlarges) */
    const t = document.activeElement;
    if (!t || !t.classList || !t.classList.contains('thumb')) return;
    const all = Array.from(t.closest('.grid, .examples, main').querySelectorAll('.thumb'));
    const i = all.indexOf(t);
    const cols = Math.max(1, Math.round(t.closest('.grid, main').clientWidth / (t.closest('.card') || t).offsetWidth));
    const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: cols, ArrowUp: -cols }[e.key];
    if (!step) return;
    const j = Math.min(all.length - 1, Math.max(0, i + step));
    all[j].focus();
    e.preventDefault();
  });

  /* ---- units: every channel of every layer, from stats, filters, activations ---- */
  const statsLayer = {}, filterLayer = {};
  for (const l of (M.stats && M.stats.layers) || []) statsLayer[l.layer] = l;
  for (const l of (M.filters && M.filters.layers) || []) filterLayer[l.layer] = l;
  function channels(layer) {
    if (statsLayer[layer]) return statsLayer[layer].channels;
    if (filterLayer[layer]) return Math.max(...filterLayer[layer].filters.map((f) => f.filter)) + 1;
    for (const it of (M.activations && M.activations.inputs) || [])
      for (const l of it.layers) if (l.layer === layer && l.maps) return l.maps;
    return 0;
  }
  const unitLayers = (model.layers || []).map((l) => l.name).filter((n) => channels(n) > 0);
  const unitHref = (layer, c) => '#' + layer + '/' + c;
  function unitLink(layer, c, text) { return el('a', { href: unitHref(layer, c), text: text || ('#' + c) }); }

  /* ---- sections ---- */
  const views = [];
  function view(key, title, show, render) { if (show) views.push({ key, title, render }); }

  view('model', 'Model', true, renderModel);
  view('classes', 'Classes', M.classes, renderClasses);
  view('filters', 'Filters', M.filters, renderFilters);
  view('activations', 'Activations', M.activations, renderActivations);
  view('stats', 'Statistics', M.stats, renderStats);
  view('units', 'Units', unitLayers.length, (arg) => renderUnit(unitLayers[0], 0, arg));
  view('dream', 'DeepDream & saliency', M.dream || M.saliency, renderDream);

  function renderModel() {
    const pre = model.preprocessing || {};
    const shape = (model.input_shape || []).map((d) => (d === null ? 'None' : d)).join(' x ');
    const kv = el('dl', { class: 'kv' });
    const add = (k, v) => { if (v !== undefined && v !== '') kv.append(el('dt', { text: k }), el('dd', { text: v })); };
    add('file', model.path);
    add('format', model.format);
    add('name', model.name + (model.class ? ' (' + model.class + ')' : ''));
    add('written by', model.keras_version ? 'Keras ' + model.keras_version + (model.backend ? ', backend ' + model.backend : '') : 'Keras 1.x (not recorded)');
    add('input shape', shape);
    add('preprocessing', Object.entries(pre).filter(([k]) => k !== 'labels' && k !== 'arch').map(([k, v]) => k + ' = ' + v).join(', '));
    if (pre.labels) add('labels', pre.labels + ' (' + labels.length + ' classes)');
    add('parameters', (model.total_params || 0).toLocaleString('en') + ' (' + (model.trainable_params || 0).toLocaleString('en') + ' trainable)');
    add('forward pass', ((model.flops || 0) / 1e6).toFixed(1) + ' MFLOPs per image');
    const rows = (model.layers || []).map((l) => el('tr', {},
      el('td', {}, channels(l.name) ? unitLink(l.name, 0, l.name) : l.name), el('td', { text: l.class }),
      el('td', { text: l.output_shape }), el('td', { text: l.params.toLocaleString('en') }),
      el('td', { text: l.activation }), el('td', { text: l.inputs.join(', ') })));
    const table = el('div', { class: 'scroll' }, el('table', { id: 'layers' },
      el('thead', {}, el('tr', {}, ...['layer', 'class', 'output shape', 'parameters', 'activation', 'inputs'].map((t) => el('th', { text: t })))),
      el('tbody', {}, rows)));
    return section('Model', kv, el('h3', { text: 'Layers' }), table,
      M.config ? el('h3', { text: 'Configuration of the run (featviz-run.ini)' }) : null,
      M.config ? el('pre', { id: 'config', text: M.config }) : null);
  }

  function renderClasses() {
    const items = M.classes.items;
    const known = new Set(['class', 'label', 'objective', 'probability', 'rank', 'image', 'top', 'transfer_hits', 'transfer_judges', 'recognized_by']);
    const grid = el('div', { class: 'grid', id: 'classes-grid' });
    const order = { value: 'class' };
    function draw() {
      const list = items.slice();
      if (order.value === 'prob-desc') list.sort((a, b) => b.probability - a.probability || a.class - b.class);
      if (order.value === 'prob-asc') list.sort((a, b) => a.probability - b.probability || a.class - b.class);
      const gallery = list.map((it) => ({ src: it.image, caption: it.class + ' ' + (it.label || '') + ' · p = ' + prob(it.probability) }));
      grid.replaceChildren(...list.map((it, i) => el('div', { class: 'card', 'data-class': it.class },
        it.image ? thumb(gallery, i) : null,
        el('div', { class: 'name', text: it.class + ' · ' + (it.label || 'class ' + it.class) }),
        el('div', { class: 'meta' }, 'p = ', el('span', { class: 'prob', text: prob(it.probability) }),
          ' · rank ' + it.rank + ' · objective ' + num(it.objective, 3)),
        it.transfer_judges ? el('div', { class: 'meta transfer', title: 'recognized by: ' + (it.recognized_by || []).join(', '),
          text: 'transfer: recognized by ' + it.transfer_hits + ' of ' + it.transfer_judges + ' other models' }) : null,
        Object.keys(it).filter((k) => !known.has(k) && typeof it[k] === 'number')
          .map((k) => el('div', { class: 'meta', text: k + ' ' + num(it[k], 3) })),
        it.top ? el('ol', { class: 'top3', title: 'the model\'s top 3 on this image' },
          it.top.map((t) => el('li', { text: (t.label || 'class ' + t.class) + ' ' + prob(t.probability !== undefined ? t.probability : t.value) }))) : null)));
    }
    draw();
    const good = items.filter((it) => it.probability >= 0.9).length;
    const judged = items.filter((it) => it.transfer_judges);
    const rate = judged.length ? judged.reduce((a, it) => a + it.transfer_hits / it.transfer_judges, 0) / judged.length : 0;
    return section('Classes',
      el('p', { class: 'note', text: items.length + ' synthesized class images; the model gives ' + good + ' of them probability ≥ 0.9 for their class' +
        (judged.length ? '; other models recognize them at a mean rate of ' + rate.toFixed(2) + ' (featviz transfer)' : '') + '. Click an image to enlarge it; arrow keys step through them.' }),
      el('div', { class: 'toolbar' }, el('label', {}, 'order ', select('classes-sort',
        [['class', 'by class number'], ['prob-desc', 'by probability, highest first'], ['prob-asc', 'by probability, lowest first']],
        'class', (v) => { order.value = v; draw(); }))),
      grid);
  }

  function deadSet(layer) {
    const s = new Set();
    if (statsLayer[layer]) for (const c of statsLayer[layer].dead) s.add(c);
    return s;
  }

  function renderFilters(arg) {
    const layers = M.filters.layers;
    const cur = layers.find((l) => l.layer === arg) || layers[0];
    const statsDead = deadSet(cur.layer);
    const gallery = cur.filters.map((f) => ({ src: f.image, caption: cur.layer + ' filter ' + f.filter + (f.dead ? ' (dead)' : '') }));
    const grid = el('div', { class: 'grid small', id: 'filter-grid' }, cur.filters.map((f, i) =>
      el('div', { class: 'card' + (f.dead ? ' dead' : ''), 'data-filter': f.filter },
        f.image ? thumb(gallery, i) : null,
        el('div', { class: 'meta' }, unitLink(cur.layer, f.filter), ' ', f.dead ? el('span', { class: 'badge dead', text: 'dead' }) : null,
          statsDead.has(f.filter) && !f.dead ? el('span', { class: 'badge dead', text: 'never fires' }) : null))));
    const nDead = cur.filters.filter((f) => f.dead).length;
    return section('Filters',
      el('div', { class: 'toolbar' }, el('label', {}, 'layer ', select('filter-layer', layers.map((l) => [l.layer, l.layer + ' (' + l.filters.length + ')']),
        cur.layer, (v) => { location.hash = '#filters/' + v; }))),
      el('p', { class: 'note', text: cur.filters.length + ' preferred patterns of ' + cur.layer + '; ' + nDead + ' dead (framed red: the filter stays off even after the dead-ReLU escape).' }),
      grid,
      cur.montage ? el('p', {}, el('a', { href: enc(cur.montage), text: 'the montage of ' + cur.layer }), cur.kernels ? ' · ' : '', cur.kernels ? el('a', { href: enc(cur.kernels), text: 'its raw kernels' }) : '') : null);
  }

  function renderActivations(arg) {
    const A = M.activations;
    const parts = (arg || '').split('/');
    const input = A.inputs.find((i) => i.name === parts[0]) || A.inputs[0];
    const lname = parts.slice(1).join('/');
    const layer = input.layers.find((l) => l.layer === lname) || input.layers.find((l) => l.maps) || input.layers[0];
    const go = (i, l) => { location.hash = '#activations/' + i + '/' + l; };
    const side = el('div', { class: 'side' });
    if (input.image) side.append(thumb([{ src: input.image, caption: input.name + ' as the model sees it' }], 0));
    const preds = input.predictions && input.predictions.top;
    if (preds) side.append(el('h3', { text: 'Top ' + preds.length + ' predictions' }), el('table', { id: 'predictions' },
      el('tbody', {}, preds.map((p) => el('tr', {}, el('td', { text: p.class }), el('td', { text: p.label || '' }),
        el('td', { class: 'prob', text: p.probability !== undefined ? prob(p.probability) : num(p.value) }))))));
    const norms = { layer: 'one scale per layer: a dark map is really weak', map: 'each map stretched on its own (Quiver)', fixed: 'a fixed range' };
    let body;
    if (layer && layer.maps) {
      const gallery = [];
      for (let c = 0; c < layer.maps; c++) gallery.push({ src: layer.prefix + c + '.png', caption: layer.layer + ' channel ' + c + ' on ' + input.name });
      body = el('div', { class: 'grid small', id: 'act-grid' }, gallery.map((g, c) =>
        el('div', { class: 'card' }, thumb(gallery, c), el('div', { class: 'meta' }, unitLink(layer.layer, c)))));
    } else if (layer && layer.bars) {
      body = el('div', { id: 'act-grid' }, thumb([{ src: layer.bars, caption: layer.layer + ' on ' + input.name }], 0));
    } else body = el('p', { text: 'no maps' });
    return section('Activations',
      el('div', { class: 'toolbar' },
        el('label', {}, 'input ', select('act-input', A.inputs.map((i) => [i.name, i.name]), input.name, (v) => go(v, layer ? layer.layer : ''))),
        el('label', {}, 'layer ', select('act-layer', input.layers.map((l) => [l.layer, l.layer + (l.maps ? ' (' + l.maps + ')' : '')]), layer ? layer.layer : '', (v) => go(input.name, v)))),
      el('p', { class: 'note', text: 'Colour map ' + A.cmap + '; scaling: ' + (norms[A.norm] || A.norm) + ' (activations.norm = ' + A.norm + ').' }),
      el('div', { class: 'two' }, side, body));
  }

  function barChart(values, dead, layer, what) {
    const n = values.length, W = 1000, H = 260, L = 46, B = 24, T = 10;
    const max = Math.max(1e-12, ...values.filter(isFinite)), bw = (W - L - 6) / n;
    let s = '<svg class="chart" id="stats-chart" viewBox="0 0 ' + W + ' ' + H + '" role="img" aria-label="' + esc(what + ' per channel of ' + layer) + '">';
    for (let k = 0; k <= 4; k++) {
      const y = T + (H - T - B) * (1 - k / 4);
      s += '<line x1="' + L + '" x2="' + W + '" y1="' + y + '" y2="' + y + '" stroke="#e5e7eb"/><text x="' + (L - 4) + '" y="' + (y + 4) + '" text-anchor="end">' + esc(num(max * k / 4, 2)) + '</text>';
    }
    values.forEach((v, c) => {
      const h = Math.max(dead.has(c) ? 2 : 0, (H - T - B) * Math.max(0, v) / max);
      s += '<a href="' + esc(unitHref(layer, c)) + '"><title>' + esc('#' + c + ': ' + num(v) + (dead.has(c) ? ' (dead)' : '')) + '</title><rect class="bar' + (dead.has(c) ? ' dead' : '') + '" x="' + (L + c * bw + bw * 0.1) + '" y="' + (H - B - h) + '" width="' + Math.max(0.5, bw * 0.8) + '" height="' + h + '"/></a>';
    });
    const every = Math.ceil(n / 32);
    for (let c = 0; c < n; c += every) s += '<text x="' + (L + (c + 0.5) * bw) + '" y="' + (H - 8) + '" text-anchor="middle">' + c + '</text>';
    return s + '</svg>';
  }

  function renderStats(arg) {
    const S = M.stats;
    const parts = (arg || '').split('?');
    const cur = S.layers.find((l) => l.layer === parts[0]) || S.layers[0];
    const metric = parts[1] === 'fires' ? 'fires' : parts[1] === 'max' ? 'max' : 'mean';
    const dead = new Set(cur.dead);
    const val = (c) => (metric === 'fires' ? 1 - c.zero_fraction : metric === 'max' ? c.max : c.mean);
    const chart = el('div', { html: barChart(cur.per_channel.map(val), dead, cur.layer, metric) });
    const rows = cur.per_channel.map((c) => el('tr', { class: c.dead ? 'dead' : null },
      el('td', {}, unitLink(cur.layer, c.channel)), el('td', { text: num(c.mean) }), el('td', { text: num(c.max) }),
      el('td', { text: pct(1 - c.zero_fraction) }), el('td', { text: c.dead ? 'dead' : '' })));
    const names = { mean: 'mean activation', fires: 'firing rate (fraction of images where it fires)', max: 'largest value' };
    return section('Statistics',
      el('p', { class: 'note', text: 'Over ' + S.images + ' images' + (S.interrupted ? ' (interrupted)' : '') + ': ' + S.fires + '.' }),
      el('div', { class: 'toolbar' },
        el('label', {}, 'layer ', select('stats-layer', S.layers.map((l) => [l.layer, l.layer + ' (' + l.dead.length + ' of ' + l.channels + ' dead)']), cur.layer, (v) => { location.hash = '#stats/' + v + '?' + metric; })),
        el('label', {}, 'bars ', select('stats-metric', Object.entries(names), metric, (v) => { location.hash = '#stats/' + cur.layer + '?' + v; }))),
      el('h3', { text: cur.layer + ': ' + names[metric] + ' per ' + (cur.kind === 'units' ? 'unit' : 'filter') + ', ' + dead.size + ' dead (red)' }),
      chart,
      el('h3', { text: 'The numbers' }),
      el('div', { class: 'scroll' }, el('table', { id: 'stats-table' },
        el('thead', {}, el('tr', {}, ['channel', 'mean', 'max', 'fires on', 'dead'].map((t) => el('th', { text: t })))), el('tbody', {}, rows))));
  }

  /* A dataset example: the receptive field of the maximum, cropped, and the whole image with it framed. */
  function example(t, size, gallery, i) {
    const box = t.box, ih = size[0], iw = size[1];
    const bh = box[2] - box[0] + 1, bw = box[3] - box[1] + 1, k = 96 / Math.max(bh, bw);
    const crop = el('div', { class: 'crop', title: 'rows ' + box[0] + '-' + box[2] + ', columns ' + box[1] + '-' + box[3] });
    const ci = img(t.file, 'receptive field on image ' + t.image);
    ci.style.cssText = 'width:' + iw * k + 'px;height:' + ih * k + 'px;left:' + (-box[1] * k + (96 - bw * k) / 2) + 'px;top:' + (-box[0] * k + (96 - bh * k) / 2) + 'px';
    crop.append(ci);
    const whole = el('div', { class: 'whole' }, img(t.file, 'image ' + t.image));
    const sx = 96 / iw, sy = 96 / ih;
    whole.append(el('div', { class: 'box', style: 'left:' + box[1] * sx + 'px;top:' + box[0] * sy + 'px;width:' + bw * sx + 'px;height:' + bh * sy + 'px' }));
    return el('div', { class: 'example card' }, el('div', { class: 'pair' }, crop,
      el('button', { class: 'thumb', type: 'button', style: 'width:96px;height:96px', 'aria-label': 'enlarge image ' + t.image, onclick: () => lightbox.open(gallery, i) }, whole)),
      el('div', { class: 'meta', title: t.input, text: '#' + (i + 1) + ' · max ' + num(t.value, 3) + ' · ' + t.input.split('/').pop() }));
  }

  function histogram(h) {
    const W = 600, H = 160, B = 22, T = 8, n = h.counts.length + 1;
    const counts = [h.silent].concat(h.counts), max = Math.max(1, ...counts), bw = (W - 8) / n;
    let s = '<svg class="chart" id="unit-hist" viewBox="0 0 ' + W + ' ' + H + '" role="img" aria-label="histogram of the per-image maximum">';
    counts.forEach((v, i) => {
      const hh = (H - B - T) * v / max;
      const range = i === 0 ? 'does not fire (max ≤ 0)' : num((i - 1) * h.width, 3) + ' to ' + num(i * h.width, 3);
      s += '<rect class="bar' + (i === 0 ? ' dead' : '') + '" x="' + (4 + i * bw + 1) + '" y="' + (H - B - hh) + '" width="' + Math.max(1, bw - 2) + '" height="' + hh + '"><title>' + esc(range + ': ' + v + ' images') + '</title></rect>';
    });
    s += '<text x="4" y="' + (H - 6) + '">≤ 0</text><text x="' + (W - 4) + '" y="' + (H - 6) + '" text-anchor="end">' + esc(num(h.counts.length * h.width, 3)) + '</text>';
    return s + '</svg>';
  }

  function renderUnit(layer, c) {
    const n = channels(layer);
    c = Math.max(0, Math.min(n - 1, c));
    const st = statsLayer[layer], ch = st && st.per_channel[c];
    const fl = filterLayer[layer], f = fl && fl.filters.find((x) => x.filter === c);
    const out = section(layer + ' · ' + (st && st.kind === 'units' ? 'unit ' : 'filter ') + c);
    const go = (l, k) => { location.hash = unitHref(l, k); };
    out.append(el('div', { class: 'toolbar unitnav' },
      el('label', {}, 'layer ', select('unit-layer', unitLayers.map((l) => [l, l]), layer, (v) => go(v, 0))),
      el('label', {}, 'unit ', el('input', { id: 'unit-number', type: 'number', min: 0, max: n - 1, value: c, onchange: (e) => go(layer, +e.target.value) }), ' of ' + n),
      c > 0 ? unitLink(layer, c - 1, '‹ previous') : null, c < n - 1 ? unitLink(layer, c + 1, 'next ›') : null,
      el('span', { class: 'muted', text: 'address: #' + layer + '/' + c })));
    const status = [];
    if (ch) status.push(ch.dead ? el('span', { class: 'badge dead', text: 'dead: fires on none of ' + M.stats.images + ' images' })
      : el('span', { class: 'badge', text: 'fires on ' + pct(1 - ch.zero_fraction) + ' of ' + M.stats.images + ' images' }));
    if (f) status.push(' ', el('span', { class: 'badge' + (f.dead ? ' dead' : ''), text: f.dead ? 'pattern: stays off (dead)' : 'pattern: objective ' + num(f.objective, 3) }));
    out.append(el('p', {}, status));
    const two = el('div', { class: 'two' });
    const side = el('div', { class: 'side' });
    if (f && f.image) side.append(el('h3', { text: 'Preferred pattern' }), thumb([{ src: f.image, caption: layer + ' filter ' + c + ' preferred pattern' }], 0));
    if (ch) side.append(el('dl', { class: 'kv' }, el('dt', { text: 'mean' }), el('dd', { text: num(ch.mean) }),
      el('dt', { text: 'max' }), el('dd', { text: num(ch.max) })));
    const body = el('div');
    if (ch && ch.top && ch.top.length && ch.top[0].file) {
      const top = ch.top.filter((t) => t.file);
      const gallery = top.map((t) => ({ src: t.file, caption: t.input + ' (max ' + num(t.value, 3) + ')' }));
      body.append(el('h3', { text: 'Dataset examples: the ' + top.length + ' images that excite it most' }),
        el('p', { class: 'note', text: 'Left: the receptive field of the position of the maximum; right: the whole image with that field framed.' }),
        el('div', { class: 'examples', id: 'unit-examples' }, top.map((t, i) => example(t, M.stats.input_size, gallery, i))));
    }
    if (ch && ch.hist) body.append(el('h3', { text: 'Its maximum per image over the dataset' }), el('div', { html: histogram(ch.hist) }));
    const maps = [];
    for (const it of (M.activations && M.activations.inputs) || [])
      for (const l of it.layers) if (l.layer === layer && l.maps > c) maps.push({ src: l.prefix + c + '.png', caption: layer + ' channel ' + c + ' on ' + it.name });
    if (maps.length) body.append(el('h3', { text: 'Its activation maps' }), el('div', { class: 'grid small' },
      maps.map((m, i) => el('div', { class: 'card' }, thumb(maps, i), el('div', { class: 'meta', text: m.caption.split(' on ')[1] })))));
    if (!body.childNodes.length) body.append(el('p', { class: 'note', text: 'Run [stats] and [filters] on this layer for its dataset examples and preferred pattern.' }));
    two.append(side, body);
    out.append(two);
    return out;
  }

  function renderDream() {
    const out = section('DeepDream & saliency');
    for (const [key, title] of [['dream', 'DeepDream'], ['saliency', 'Saliency maps']]) {
      if (!M[key]) continue;
      const gallery = M[key].map((s) => ({ src: s, caption: s }));
      out.append(el('h3', { text: title }), el('div', { class: 'grid', id: key + '-grid' },
        gallery.map((g, i) => el('div', { class: 'card' }, thumb(gallery, i), el('div', { class: 'meta', text: g.src.split('/').pop() })))));
    }
    return out;
  }

  /* ---- routing ---- */
  const nav = document.getElementById('nav');
  for (const v of views) nav.append(el('a', { href: '#' + v.key, text: v.title, 'data-view': v.key }));
  document.getElementById('title').textContent = 'featviz · ' + (model.name || 'report') + (model.path ? ' (' + model.path.split('/').pop() + ')' : '');

  function route() {
    const hash = decodeURIComponent(location.hash.slice(1));
    const slash = hash.lastIndexOf('/');
    let node, key;
    if (slash > 0 && /^\d+$/.test(hash.slice(slash + 1)) && unitLayers.includes(hash.slice(0, slash))) {
      key = 'units';
      node = renderUnit(hash.slice(0, slash), +hash.slice(slash + 1));
    } else {
      const first = hash.indexOf('/');
      key = first < 0 ? hash : hash.slice(0, first);
      const v = views.find((x) => x.key === key) || views[0];
      key = v.key;
      node = v.render(first < 0 ? '' : hash.slice(first + 1));
    }
    for (const a of nav.children) a.classList.toggle('on', a.dataset.view === key);
    main.replaceChildren(node);
    document.body.dataset.view = key;
    window.scrollTo(0, 0);
  }
  window.addEventListener('hashchange', route);
  route();

  /* Every file the page can show, for the tests (tests/browser). */
  window.featvizFiles = function () {
    const f = [];
    const add = (p) => { if (p) f.push(p); };
    for (const it of (M.classes && M.classes.items) || []) add(it.image);
    if (M.classes) add(M.classes.montage);
    for (const l of (M.filters && M.filters.layers) || []) { add(l.montage); add(l.kernels); l.filters.forEach((x) => add(x.image)); }
    for (const it of (M.activations && M.activations.inputs) || []) {
      add(it.image);
      for (const l of it.layers) { add(l.bars); add(l.grid); for (let c = 0; c < l.maps; c++) add(l.prefix + c + '.png'); }
    }
    for (const l of (M.stats && M.stats.layers) || []) { add(l.chart); l.per_channel.forEach((c) => c.top.forEach((t) => add(t.file))); }
    ((M.dream || []).concat(M.saliency || [])).forEach(add);
    return Array.from(new Set(f));
  };
})();
