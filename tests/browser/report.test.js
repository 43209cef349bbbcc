#!/usr/bin/env node
/* Opens a featviz report (OUTPUT_DIR/index.html) in Debian's chromium through
 * puppeteer-core (no browser is downloaded) and checks it against the files
 * the jobs wrote (classes.csv, filters/<layer>.csv, stats.csv,
 * predictions.json, the label file), not against the report's own manifest:
 *
 *   node report.test.js OUTPUT_DIR [--screenshots DIR]
 *
 * Fails on any console error, page error or failed request. With
 * --screenshots, saves report.png (1280 px) and report-phone.png there. */
'use strict';
const fs = require('fs');
const path = require('path');
const puppeteer = require('puppeteer-core');

const args = process.argv.slice(2);
const dir = path.resolve(args[0] || '');
const shotDir = args.includes('--screenshots') ? path.resolve(args[args.indexOf('--screenshots') + 1]) : null;
const root = path.resolve(__dirname, '..', '..');
let failures = 0;
function check(ok, what) {
  if (!ok) failures++;
  console.log((ok ? 'ok   ' : 'FAIL ') + what);
}

/* a CSV line, with "quoted, fields" */
function csvLine(line) {
  const out = [];
  let cur = '', q = false;
  for (const ch of line) {
    if (ch === '"') q = !q;
    else if (ch === ',' && !q) { out.push(cur); cur = ''; } else cur += ch;
  }
  out.push(cur);
  return out;
}
const csv = (file) => fs.readFileSync(file, 'utf8').trim().split('\n').slice(1).map(csvLine);

/* waits until every <img> of the page (after scrolling through it, for the lazy ones) is loaded */
async function allImagesLoaded(page) {
  await page.evaluate(async () => {
    for (let y = 0; y < document.body.scrollHeight; y += 400) {
      window.scrollTo(0, y);
      await new Promise((r) => setTimeout(r, 15));
    }
    window.scrollTo(0, 0);
  });
  await page.waitForFunction(() => Array.from(document.querySelectorAll('main img')).every((i) => i.complete), { timeout: 20000 });
  return page.evaluate(() => Array.from(document.querySelectorAll('main img')).filter((i) => i.naturalWidth === 0).map((i) => i.src));
}
const srcs = (page, sel) => page.$$eval(sel, (imgs) => imgs.map((i) => i.getAttribute('src')));

async function main() {
  const index = path.join(dir, 'index.html');
  check(fs.existsSync(index), 'index.html exists in ' + dir);
  const html = fs.readFileSync(index, 'utf8');
  check(!/https?:\/\//i.test(html), 'index.html refers to no http:// or https:// address');
  check(!/https?:\/\//i.test(fs.readFileSync(path.join(dir, 'report.json'), 'utf8')), 'report.json refers to no http(s) address');
  check(!/<(link|script)[^>]+(href|src)=/i.test(html), 'no external stylesheet or script');

  const labels = csv(path.join(root, 'models', 'gtsrb-labels.csv')).map((r) => r[1]);
  const classes = csv(path.join(dir, 'classes', 'classes.csv')).map((r) => ({ cls: +r[0], label: r[1], p: +r[3] }));

  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: (process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : []).concat(['--allow-file-access-from-files', '--disable-gpu']),
  });
  const problems = [];
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warn') problems.push('console ' + m.type() + ': ' + m.text()); });
    page.on('pageerror', (e) => problems.push('page error: ' + e.message));
    page.on('requestfailed', (r) => problems.push('failed request: ' + r.url() + ' ' + (r.failure() || {}).errorText));
    page.on('request', (r) => { if (!r.url().startsWith('file://') && !r.url().startsWith('data:')) problems.push('network request: ' + r.url()); });
    const url = 'file://' + index;

    /* model */
    await page.goto(url + '#model', { waitUntil: 'load' });
    const layerRows = await page.$$eval('#layers tbody tr', (r) => r.length);
    check(layerRows >= 10, 'model: the layer table has ' + layerRows + ' rows');
    check((await page.$eval('#config', (e) => e.textContent)).includes('[classes]'), 'model: the run\'s configuration is shown');

    /* classes: the 43 of classes.csv, with names and probabilities */
    await page.goto(url + '#classes', { waitUntil: 'load' });
    const cards = await page.$$eval('#classes-grid .card', (cs) => cs.map((c) => ({
      cls: +c.dataset.class, name: c.querySelector('.name').textContent, p: c.querySelector('.prob').textContent,
      top: c.querySelectorAll('.top3 li').length, img: c.querySelector('img') && c.querySelector('img').getAttribute('src') })));
    check(cards.length === 43 && classes.length === 43, 'classes: 43 cards (' + cards.length + ') for the 43 rows of classes.csv');
    let named = 0, probs = 0, top3 = 0;
    for (const c of cards) {
      const ref = classes.find((r) => r.cls === c.cls);
      if (ref && c.name.includes(labels[c.cls]) && c.name.includes(String(c.cls))) named++;
      if (ref && Math.abs(parseFloat(c.p) - ref.p) <= 5e-4 + 1e-3 * ref.p) probs++;
      if (c.top === 3) top3++;
    }
    check(named === 43, 'classes: every card shows its class number and label name (' + named + ')');
    check(probs === 43, 'classes: every card shows the probability of classes.csv (' + probs + ')');
    check(top3 === 43, 'classes: every card lists the top 3 (' + top3 + ')');
    const trFile = path.join(dir, 'classes', 'transfer.json');
    if (fs.existsSync(trFile)) { /* written by featviz transfer (or tools/transfer.py --judge) */
      const tr = JSON.parse(fs.readFileSync(trFile, 'utf8')).classes;
      const shown = await page.$$eval('#classes-grid .card', (cs) => cs.map((c) => (c.querySelector('.transfer') || {}).textContent || ''));
      check(tr.every((t) => shown[cards.findIndex((c) => c.cls === t.class)].includes('recognized by ' + t.transfer_hits + ' of ' + t.transfer_judges)),
        'classes: the transfer rates of transfer.json');
    }
    const broken = await allImagesLoaded(page);
    check(broken.length === 0, 'classes: every image loads' + (broken.length ? ' (not: ' + broken.slice(0, 3).join(', ') + ')' : ''));
    await page.select('#classes-sort', 'prob-desc');
    const sorted = await page.$$eval('#classes-grid .card .prob', (ps) => ps.map((p) => parseFloat(p.textContent)));
    check(sorted.every((p, i) => i === 0 || p <= sorted[i - 1]) && sorted.length === 43, 'classes: sorted by probability, highest first');
    const best = classes.reduce((a, b) => (b.p > a.p ? b : a));
    check(Math.abs(sorted[0] - best.p) < 1e-3, 'classes: the first card is the most probable of classes.csv');
    await page.select('#classes-sort', 'class');

    /* enlarge: click, arrows, Escape */
    await page.click('#classes-grid .card .thumb');
    await page.waitForSelector('#lightbox:not([hidden])');
    const big = await page.$eval('#lb-img', (i) => i.getAttribute('src'));
    check(big === cards[0].img, 'lightbox: the clicked image, enlarged (' + big + ')');
    await page.waitForFunction(() => document.getElementById('lb-img').naturalWidth > 0);
    const w = await page.$eval('#lb-img', (i) => i.getBoundingClientRect().width);
    check(w >= 400, 'lightbox: shown at least 400 px wide (' + Math.round(w) + ')');
    await page.keyboard.press('ArrowRight');
    check(await page.$eval('#lb-img', (i) => i.getAttribute('src')) === cards[1].img, 'lightbox: ArrowRight shows the next class');
    if (shotDir) {
      fs.mkdirSync(shotDir, { recursive: true });
      await page.screenshot({ path: path.join(shotDir, 'report-lightbox.png') });
    }
    await page.keyboard.press('Escape');
    check(await page.$eval('#lightbox', (e) => e.hidden), 'lightbox: Escape closes it');

    /* filters: switching layer changes the pictures */
    await page.goto(url + '#filters', { waitUntil: 'load' });
    const flayers = await page.$$eval('#filter-layer option', (o) => o.map((x) => x.value));
    check(flayers.length >= 2, 'filters: a layer selector with ' + flayers.length + ' layers');
    const f1 = await srcs(page, '#filter-grid img');
    await page.select('#filter-layer', flayers[1]);
    await page.waitForFunction((l) => document.getElementById('filter-layer').value === l && location.hash.endsWith(l), {}, flayers[1]);
    const f2 = await srcs(page, '#filter-grid img');
    const fcsv = csv(path.join(dir, 'filters', flayers[1] + '.csv'));
    check(f2.length === fcsv.length && f2.every((s) => !f1.includes(s)), 'filters: ' + flayers[1] + ' shows its ' + fcsv.length + ' patterns, none of ' + flayers[0] + '\'s');
    const deadCsv = fcsv.filter((r) => r[3] === '1').length;
    check(await page.$$eval('#filter-grid .card.dead', (d) => d.length) === deadCsv, 'filters: the ' + deadCsv + ' dead filters of ' + flayers[1] + '.csv are flagged');
    check((await allImagesLoaded(page)).length === 0, 'filters: every pattern loads');

    /* activations: input, then layer */
    await page.goto(url + '#activations', { waitUntil: 'load' });
    const inputs = await page.$$eval('#act-input option', (o) => o.map((x) => x.value));
    await page.select('#act-input', inputs[inputs.length - 1]);
    await page.waitForFunction((i) => location.hash.includes(i), {}, inputs[inputs.length - 1]);
    const alayers = await page.$$eval('#act-layer option', (o) => o.map((x) => x.value));
    await page.select('#act-layer', alayers[0]);
    await page.waitForFunction((l) => location.hash.endsWith(l), {}, alayers[0]);
    const a1 = await srcs(page, '#act-grid img');
    await page.select('#act-layer', alayers[1]);
    await page.waitForFunction((l) => location.hash.endsWith(l), {}, alayers[1]);
    const a2 = await srcs(page, '#act-grid img');
    const item = inputs[inputs.length - 1];
    const nFiles = fs.readdirSync(path.join(dir, 'activations', item, alayers[1])).length;
    check(a2.length === nFiles && a2.every((s) => !a1.includes(s)), 'activations: ' + alayers[1] + ' of ' + item + ' shows its ' + nFiles + ' maps, none of ' + alayers[0] + '\'s');
    const pred = JSON.parse(fs.readFileSync(path.join(dir, 'activations', item, 'predictions.json'), 'utf8'));
    const rows = await page.$$eval('#predictions tr', (r) => r.map((x) => x.textContent));
    check(rows.length === pred.top.length && pred.top.every((t, i) => rows[i].includes(t.label)), 'activations: the top-' + pred.top.length + ' predictions of predictions.json with labels');
    check((await allImagesLoaded(page)).length === 0, 'activations: the input and every map load');

    /* statistics: one bar per channel, the dead ones of stats.csv in red */
    await page.goto(url + '#stats', { waitUntil: 'load' });
    const slayers = await page.$$eval('#stats-layer option', (o) => o.map((x) => x.value));
    const scsv = csv(path.join(dir, 'stats', 'stats.csv'));
    for (const l of slayers) {
      await page.select('#stats-layer', l);
      await page.waitForFunction((x) => document.getElementById('stats-layer').value === x, {}, l);
      const bars = await page.$$eval('#stats-chart rect.bar', (b) => b.length);
      const dead = await page.$$eval('#stats-chart rect.bar.dead', (b) => b.length);
      const rowsL = scsv.filter((r) => r[0] === l);
      const deadL = rowsL.filter((r) => r[5] === 'true').length;
      check(bars === rowsL.length && dead === deadL, 'stats: ' + l + ': ' + bars + ' bars, ' + dead + ' dead in red (stats.csv: ' + rowsL.length + ', ' + deadL + ')');
    }

    /* a unit page by its address */
    const unitLayer = flayers[1], unit = 17;
    await page.goto(url + '#' + unitLayer + '/' + unit, { waitUntil: 'load' });
    await page.waitForSelector('#unit-examples');
    const ex = await page.$$eval('#unit-examples .example', (e) => e.length);
    const top = scsv.find((r) => r[0] === unitLayer && +r[1] === unit)[6].trim().split(' ').filter(Boolean);
    check(ex === top.length && ex > 0, 'unit ' + unitLayer + '/' + unit + ': ' + ex + ' dataset examples (stats.csv: ' + top.length + ')');
    const exSrc = await srcs(page, '#unit-examples .crop img');
    check(exSrc.every((s, i) => s === 'stats/examples/' + top[i] + '.png'), 'unit: the examples are stats.csv\'s top images, best first');
    check(await page.$('#unit-hist') !== null, 'unit: a histogram of its activations');
    check((await srcs(page, '.side img')).some((s) => s === 'filters/' + unitLayer + '/filter_' + String(unit).padStart(3, '0') + '.png'), 'unit: its preferred pattern');
    check((await allImagesLoaded(page)).length === 0, 'unit: every picture loads');
    if (shotDir) {
      await page.screenshot({ path: path.join(shotDir, 'report-unit.png') });
    }
    /* dream and saliency */
    await page.goto(url + '#dream', { waitUntil: 'load' });
    const pngs = (d) => (fs.existsSync(path.join(dir, d)) ? fs.readdirSync(path.join(dir, d)).filter((f) => f.endsWith('.png')).length : 0);
    check(await page.$$eval('#dream-grid img', (i) => i.length) === pngs('dream') && await page.$$eval('#saliency-grid img', (i) => i.length) === pngs('saliency') && pngs('dream') > 0,
      'the ' + pngs('dream') + ' DeepDream and ' + pngs('saliency') + ' saliency pictures shown');
    check((await allImagesLoaded(page)).length === 0, 'dream: every picture loads');

    /* every file the page can show exists */
    const files = await page.evaluate(() => window.featvizFiles());
    const missing = files.filter((f) => !fs.existsSync(path.join(dir, f)));
    check(files.length > 100 && missing.length === 0, 'all ' + files.length + ' files the page refers to exist' + (missing.length ? ' (missing: ' + missing.slice(0, 5).join(', ') + ')' : ''));
    check(files.every((f) => !f.includes('..') && !path.isAbsolute(f)), 'every file is inside the report folder');

    /* a phone-width window: nothing wider than the screen */
    await page.setViewport({ width: 390, height: 844, isMobile: true });
    for (const v of ['model', 'classes', 'activations', 'stats', unitLayer + '/' + unit]) {
      await page.goto(url + '#' + v, { waitUntil: 'load' });
      const wide = await page.evaluate(() => document.documentElement.scrollWidth);
      check(wide <= 392, 'phone width: #' + v + ' fits in 390 px (' + wide + ')');
    }
    await page.goto(url + '#classes', { waitUntil: 'load' });
    if (shotDir) {
      await page.screenshot({ path: path.join(shotDir, 'report-phone.png') });
      await page.setViewport({ width: 1280, height: 800 });
      await page.goto(url + '#classes', { waitUntil: 'load' });
      await allImagesLoaded(page);
      await page.screenshot({ path: path.join(shotDir, 'report.png') });
    }
  } finally {
    await browser.close();
  }
  check(problems.length === 0, 'no console error, page error or failed request' + (problems.length ? ':\n  ' + problems.slice(0, 10).join('\n  ') : ''));
  console.log(failures ? failures + ' check(s) failed' : 'all checks passed');
  process.exit(failures ? 1 : 0);
}
main().catch((e) => { console.error('FAIL ' + (e.stack || e)); process.exit(1); });
