// The nrt-alerts web map: MapLibre GL (vendored), raster tiles from this server only, no fonts or sprites.
'use strict';

// Absolute base (MapLibre loads tiles from workers, which do not resolve relative URLs); keeps a proxy prefix.
const BASE = new URL('.', document.baseURI).href;
const TILES = `${BASE}layers/alerts/tiles/WebMercatorQuad/{z}/{x}/{y}.png`;
const DAY_MS = 86400000;
const $ = (id) => document.getElementById(id);

const state = { version: null, filters: {}, map: null, newest: [] };
window.nrt = state;  // for debugging and the browser tests

const isoDay = (days) => new Date(days * DAY_MS).toISOString().slice(0, 10);
const dayOf = (iso) => Math.floor(Date.parse(iso.slice(0, 10)) / DAY_MS);
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);

async function getJSON(path) {
  const r = await fetch(BASE + path);
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

function alertUrl(filters) {
  const q = new URLSearchParams({ colormap_name: 'alerts', ...filters });
  if (state.version) q.set('version', state.version);
  return `${TILES}?${q}`;
}

function setStatus(health) {
  $('status').textContent = health.latest_version
    ? `Alerts as of ${health.latest_datetime.slice(0, 10)} (version ${health.latest_version})`
    : 'Nothing published yet: the first run is still going. Reload in a minute.';
}

// ---- filters: only sent when set; a server that refuses them (400) leaves the alert tiles unfiltered.
function wantedFilters() {
  const after = +$('after').value, before = +$('before').value, conf = +$('min-conf').value;
  const f = {};
  if (after > +$('after').min) f.detected_after = isoDay(after);
  if (before < +$('before').max) f.detected_before = isoDay(before);
  if (conf > 0) f.min_confidence = String(conf);
  return f;
}

async function filtersAccepted(filters) {
  if (!Object.keys(filters).length) return true;
  const map = state.map, z = Math.min(16, Math.max(0, Math.floor(map.getZoom())));
  const c = map.getCenter(), n = 2 ** z;
  const x = Math.floor(((c.lng + 180) / 360) * n);
  const lat = (c.lat * Math.PI) / 180;
  const y = Math.floor(((1 - Math.log(Math.tan(lat) + 1 / Math.cos(lat)) / Math.PI) / 2) * n);
  try {
    const r = await fetch(alertUrl(filters).replace('{z}', z).replace('{x}', x).replace('{y}', y));
    return r.ok;
  } catch (err) {
    return false;
  }
}

let filterTimer = null;
function onFilterInput() {
  $('after-out').textContent = isoDay(+$('after').value);
  $('before-out').textContent = isoDay(+$('before').value);
  $('conf-out').textContent = $('min-conf').value;
  clearTimeout(filterTimer);
  filterTimer = setTimeout(applyFilters, 250);
}

async function applyFilters() {
  const wanted = wantedFilters();
  if (await filtersAccepted(wanted)) {
    state.filters = wanted;
    $('filter-note').textContent = '';
  } else {
    state.filters = {};
    $('filter-note').textContent = 'The server does not accept these filters yet: showing all alerts.';
  }
  refreshAlerts();
}

function refreshAlerts() {
  const source = state.map.getSource('alerts');
  if (source) source.setTiles([alertUrl(state.filters)]);
}

// ---- side panel with the decoded alert at a clicked pixel
function showPanel(rows) {
  $('panel-body').innerHTML = rows.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v ?? '–')}</dd>`).join('');
  $('panel').hidden = false;
}

async function onClick(ev) {
  const { lng, lat } = ev.lngLat;
  const q = state.version ? `?version=${state.version}` : '';
  try {
    const r = await fetch(`${BASE}point/${lng.toFixed(6)},${lat.toFixed(6)}${q}`);
    const b = await r.json();
    if (!r.ok) {
      showPanel([['status', b.detail || `HTTP ${r.status}`]]);
      return;
    }
    const rows = [['status', b.status_name], ['detected', b.detection_date]];
    const confirmed = b.confirmation_date ?? b.confirmed_date;
    if (confirmed) rows.push(['confirmed', confirmed]);
    rows.push(['magnitude', b.magnitude], ['confidence', b.confidence],
      ['location', `${lng.toFixed(5)}, ${lat.toFixed(5)}`]);
    showPanel(rows);
  } catch (err) {
    showPanel([['error', String(err)]]);
  }
  loadSeries(lng, lat);
}

// ---- the pixel's time series: observations, model, threshold band, monitoring start and detection date
let seriesRequest = 0;
async function loadSeries(lng, lat) {
  const box = $('timeseries'), mine = ++seriesRequest;
  box.className = 'placeholder';
  box.textContent = 'Loading the time series…';
  const q = state.version ? `?version=${state.version}` : '';
  try {
    const r = await fetch(`${BASE}series/${lng.toFixed(6)},${lat.toFixed(6)}${q}`);
    const b = await r.json();
    if (mine !== seriesRequest) return;  // a later click won
    if (!r.ok) {
      box.textContent = b.detail || `HTTP ${r.status}`;
      return;
    }
    box.className = '';
    box.innerHTML = seriesSvg(b);
  } catch (err) {
    if (mine === seriesRequest) box.textContent = `time series: ${err}`;
  }
}

const SVG = { w: 280, h: 190, left: 38, right: 8, top: 10, bottom: 30 };

function seriesSvg(b) {
  const { w, h, left, right, top, bottom } = SVG;
  const obs = b.observations.map((o) => ({ t: Date.parse(o.date.slice(0, 19) + 'Z'), v: o.value }));
  const curve = b.model ? b.model.curve.map((c) => ({ t: Date.parse(c.date + 'T00:00:00Z'), ...c })) : [];
  const title = `${b.index.toUpperCase()} at this pixel: ${obs.length} observations` +
    (b.model ? `, ${b.model.monitor} model and threshold band` : '') +
    (b.detection_date ? `, detected ${b.detection_date}` : '');
  if (!obs.length) return `<p class="placeholder">${esc(title)}</p>`;
  const times = obs.map((o) => o.t).concat(curve.map((c) => c.t));
  const values = obs.map((o) => o.v).concat(curve.flatMap((c) => [c.lower, c.upper]));
  const t0 = Math.min(...times), t1 = Math.max(...times);
  let v0 = Math.min(...values), v1 = Math.max(...values);
  const pad = (v1 - v0) * 0.05 || 0.05;
  v0 -= pad; v1 += pad;
  const x = (t) => left + ((t - t0) / (t1 - t0 || 1)) * (w - left - right);
  const y = (v) => top + (1 - (v - v0) / (v1 - v0)) * (h - top - bottom);
  const f = (n) => n.toFixed(1);
  const parts = [];
  // y axis: 4-5 ticks at round values
  const step = niceStep((v1 - v0) / 4);
  for (let v = Math.ceil(v0 / step) * step; v <= v1; v += step) {
    parts.push(`<line class="grid" x1="${left}" x2="${w - right}" y1="${f(y(v))}" y2="${f(y(v))}"/>`,
      `<text class="tick" x="${left - 3}" y="${f(y(v) + 3)}" text-anchor="end">${+v.toFixed(2)}</text>`);
  }
  // x axis: one tick per year
  const y0 = new Date(t0).getUTCFullYear(), y1 = new Date(t1).getUTCFullYear();
  for (let yr = y0 + 1; yr <= y1; yr++) {
    const tx = x(Date.UTC(yr, 0, 1));
    parts.push(`<line class="tickline" x1="${f(tx)}" x2="${f(tx)}" y1="${h - bottom}" y2="${h - bottom + 4}"/>`,
      `<text class="tick" x="${f(tx)}" y="${h - bottom + 13}" text-anchor="middle">${yr}</text>`);
  }
  parts.push(`<line class="axis" x1="${left}" x2="${w - right}" y1="${h - bottom}" y2="${h - bottom}"/>`,
    `<line class="axis" x1="${left}" x2="${left}" y1="${top}" y2="${h - bottom}"/>`,
    `<text class="label" x="${(left + w - right) / 2}" y="${h - 3}" text-anchor="middle">date</text>`,
    `<text class="label" transform="translate(10 ${(top + h - bottom) / 2}) rotate(-90)" text-anchor="middle">` +
      `${esc(b.index.toUpperCase())}</text>`);
  if (curve.length) {
    const upper = curve.map((c) => `${f(x(c.t))},${f(y(c.upper))}`);
    const lower = curve.map((c) => `${f(x(c.t))},${f(y(c.lower))}`).reverse();
    parts.push(`<path class="band" d="M${upper.join('L')}L${lower.join('L')}Z"><title>threshold band: ` +
      `${esc(b.model.band)}</title></path>`);
    parts.push(`<path class="model" d="M${curve.map((c) => `${f(x(c.t))},${f(y(c.value))}`).join('L')}">` +
      `<title>fitted ${esc(b.model.monitor)} model</title></path>`);
  }
  const vline = (iso, cls, text) => {
    const t = Date.parse(iso + 'T00:00:00Z');
    if (!(t >= t0 && t <= t1)) return;
    parts.push(`<line class="${cls}" x1="${f(x(t))}" x2="${f(x(t))}" y1="${top}" y2="${h - bottom}">` +
      `<title>${esc(text)} ${esc(iso)}</title></line>`);
  };
  if (b.monitoring_start) vline(b.monitoring_start, 'monitoring-start', 'monitoring start');
  if (b.detection_date) vline(b.detection_date, 'detection', 'first detection');
  parts.push('<g class="observations">' + obs.map((o) => `<circle cx="${f(x(o.t))}" cy="${f(y(o.v))}" r="1.8">` +
    `<title>${new Date(o.t).toISOString().slice(0, 10)}: ${o.v}</title></circle>`).join('') + '</g>');
  const desc = `Dots: clear observations. Line: the fitted model; shaded: the threshold band. ` +
    `Dashed: monitoring start; red: the first detection. ${b.units}.`;
  return `<svg id="series-plot" viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" role="img" ` +
    `aria-labelledby="series-title series-desc"><title id="series-title">${esc(title)}</title>` +
    `<desc id="series-desc">${esc(desc)}</desc>${parts.join('')}</svg>` +
    `<div class="series-legend"><span class="k-obs">● observed</span> <span class="k-model">— model</span> ` +
    `<span class="k-band">▮ band</span> <span class="k-det">| detected</span></div>`;
}

function niceStep(raw) {
  const p = 10 ** Math.floor(Math.log10(raw || 1));
  const m = raw / p;
  return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

// ---- newest alerts list
function renderNewest(patches) {
  const list = $('newest');
  list.innerHTML = '';
  if (!patches.length) list.innerHTML = '<li>No confirmed alerts.</li>';
  patches.forEach((p, i) => {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.dataset.index = i;
    b.textContent = `${p.detection_date ?? '?'} · ${p.pixels} px`;
    b.addEventListener('click', () => zoomTo(p));
    li.appendChild(b);
    list.appendChild(li);
  });
}

function zoomTo(p) {
  const [w, s, e, n] = p.bbox;
  const cam = state.map.cameraForBounds([[w, s], [e, n]], { padding: 60, maxZoom: 16 });
  state.map.easeTo({ center: [p.longitude, p.latitude], zoom: cam ? cam.zoom : 15, duration: 500 });
}

async function loadNewest() {
  try {
    const body = await getJSON('alerts/newest?limit=500');
    state.newest = body.patches;
    renderNewest(body.patches.slice(0, 20));
    return body.patches;
  } catch (err) {
    $('newest').innerHTML = `<li>${esc(err)}</li>`;
    return [];
  }
}

async function loadLegend() {
  try {
    const entries = await getJSON('alerts/legend');
    $('legend').innerHTML = '<b>Legend</b>' + entries.map((e) =>
      `<div title="${esc(e.description)}"><i style="background:${esc(e.color)}"></i>${esc(e.name)}</div>`).join('');
  } catch (err) {
    $('legend').innerHTML += `<div>${esc(err)}</div>`;
  }
}

function setupSliders(latestIso, patches) {
  const max = dayOf(latestIso);
  const dated = patches.filter((p) => p.detection_date).map((p) => dayOf(p.detection_date));
  const min = Math.min(max - 30, dated.length ? Math.min(...dated) - 1 : max - 365);
  for (const id of ['after', 'before']) {
    $(id).min = min;
    $(id).max = max;
  }
  $('after').value = min;
  $('before').value = max;
  onFilterInput();
  clearTimeout(filterTimer);
}

async function main() {
  const health = await getJSON('healthz');
  setStatus(health);
  loadLegend();
  const map = new maplibregl.Map({
    container: 'map',
    style: {
      version: 8,
      sources: {},
      layers: [{ id: 'background', type: 'background', paint: { 'background-color': '#f4f2ec' } }],
    },
    center: [0, 0],
    zoom: 1,
    maxZoom: 19,
    attributionControl: { compact: true },
  });
  state.map = map;
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), 'top-left');
  map.addControl(new maplibregl.ScaleControl(), 'bottom-left');
  await new Promise((resolve) => (map.loaded() ? resolve() : map.once('load', resolve)));
  if (!health.latest_version) {
    pollHealth();
    return;
  }
  state.version = health.latest_version;
  const tj = await getJSON('layers/alerts/WebMercatorQuad/tilejson.json');
  const [w, s, e, n] = tj.bounds;
  const raster = { type: 'raster', tileSize: 256, minzoom: tj.minzoom ?? 0, maxzoom: Math.min(tj.maxzoom ?? 16, 16), bounds: tj.bounds };
  map.addSource('context', { ...raster, tiles: [`${TILES}?colormap_name=context`], attribution: 'nrt-alerts' });
  map.addSource('alerts', { ...raster, tiles: [alertUrl({})] });
  const paint = { 'raster-resampling': 'nearest', 'raster-fade-duration': 0 };
  map.addLayer({ id: 'context', type: 'raster', source: 'context', paint });
  map.addLayer({ id: 'alerts', type: 'raster', source: 'alerts', paint });
  map.fitBounds([[w, s], [e, n]], { padding: 20, animate: false });
  map.on('click', onClick);
  map.getCanvas().style.cursor = 'crosshair';
  $('panel-close').addEventListener('click', () => { $('panel').hidden = true; });

  const patches = await loadNewest();
  setupSliders(health.latest_datetime, patches);
  for (const id of ['after', 'before', 'min-conf']) $(id).addEventListener('input', onFilterInput);
  state.ready = true;
  pollHealth();
}

// The scheduler publishes new versions while the page is open: refresh the alerts when 'latest' moves.
function pollHealth() {
  setInterval(async () => {
    try {
      const h = await getJSON('healthz');
      if (!h.latest_version || h.latest_version === state.version) return;
      if (!state.map.getSource('alerts')) {
        location.reload();  // first publication since the page opened
        return;
      }
      setStatus(h);
      state.version = h.latest_version;
      refreshAlerts();
      loadNewest();
    } catch (err) {
      // the server restarts now and then: try again on the next tick
    }
  }, 10000);
}

main().catch((err) => { $('status').textContent = `Error: ${err}`; });
