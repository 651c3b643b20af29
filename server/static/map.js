// The nrt-alerts web map: MapLibre GL (vendored), raster tiles from this server only, no fonts or sprites.
'use strict';

// Absolute base (MapLibre loads tiles from workers, which do not resolve relative URLs); keeps a proxy prefix.
const BASE = new URL('.', document.baseURI).href;
const TILES = `${BASE}layers/alerts/tiles/WebMercatorQuad/{z}/{x}/{y}.png`;
const DAY_MS = 86400000;
const $ = (id) => document.getElementById(id);

// version: the publication shown; latest: the newest one; pinned: an earlier one the analyst chose (else null).
const state = { version: null, latest: null, pinned: null, filters: {}, map: null, newest: [], marker: null };
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
  if (!health.latest_version) {
    $('status').textContent = 'Nothing published yet: the first run is still going. Reload in a minute.';
  } else if (state.pinned) {
    $('status').textContent = `Earlier publication ${state.pinned} (latest: ${health.latest_version})`;
  } else {
    $('status').textContent = `Alerts as of ${health.latest_datetime.slice(0, 10)} (version ${health.latest_version})`;
  }
}

// ---- the view in the URL hash, to share or bookmark: #map=zoom/lat/lon&after=&before=&conf=&version=
function readHash() {
  const q = new URLSearchParams(location.hash.slice(1));
  const view = {};
  const m = (q.get('map') || '').split('/').map(Number);
  if (m.length === 3 && m.every(Number.isFinite)) {
    view.zoom = m[0];
    view.center = [m[2], m[1]];
  }
  for (const key of ['after', 'before']) {
    if (/^\d{4}-\d{2}-\d{2}$/.test(q.get(key) || '')) view[key] = dayOf(q.get(key));
  }
  if (Number.isFinite(+q.get('conf')) && +q.get('conf') > 0) view.conf = +q.get('conf');
  if (q.get('version')) view.version = q.get('version');
  return view;
}

function writeHash() {
  if (!state.ready) return;  // the view being restored is not the analyst's yet
  const map = state.map, c = map.getCenter();
  const q = new URLSearchParams();
  q.set('map', `${map.getZoom().toFixed(2)}/${c.lat.toFixed(6)}/${c.lng.toFixed(6)}`);
  if (state.filters.detected_after) q.set('after', state.filters.detected_after);
  if (state.filters.detected_before) q.set('before', state.filters.detected_before);
  if (state.filters.min_confidence) q.set('conf', state.filters.min_confidence);
  if (state.pinned) q.set('version', state.pinned);
  history.replaceState(null, '', `#${q.toString().replaceAll('%2F', '/')}`);
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
  await loadNewest();
  writeHash();
}

function refreshAlerts() {
  const source = state.map.getSource('alerts');
  if (source) source.setTiles([alertUrl(state.filters)]);
  const context = state.map.getSource('context');
  if (context) context.setTiles([contextUrl()]);
}

function contextUrl() {
  return `${TILES}?colormap_name=context${state.version ? `&version=${state.version}` : ''}`;
}

// ---- choosing a publication: 'latest' follows new publications, an earlier one stays put
function fillVersions(versions) {
  const select = $('version'), chosen = state.pinned || '';
  select.innerHTML = '<option value="">latest (follows new publications)</option>' +
    [...versions].reverse().map((v) => `<option value="${esc(v)}">${esc(v)}</option>`).join('');
  select.value = chosen;
}

async function chooseVersion(id) {
  state.pinned = id && id !== state.latest ? id : null;
  state.version = state.pinned || state.latest;
  $('version').value = state.pinned || '';
  setStatus(state.health);
  refreshAlerts();
  await loadNewest();
  writeHash();
}

// ---- side panel with the decoded alert at a clicked pixel
function showPanel(rows) {
  $('panel-body').innerHTML = rows.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v ?? '–')}</dd>`).join('');
  $('panel').hidden = false;
}

// A marker where the analyst clicked: which pixel the panel describes.
function placeMarker(lngLat) {
  if (!state.marker) {
    state.marker = new maplibregl.Marker({ color: '#1f4fbf' });
    state.marker.getElement().id = 'click-marker';
    state.marker.getElement().title = 'The pixel the panel describes';
  }
  state.marker.setLngLat(lngLat).addTo(state.map);
}

async function onClick(ev) {
  const { lng, lat } = ev.lngLat;
  placeMarker(ev.lngLat);
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
  if (!patches.length) {
    list.innerHTML = Object.keys(state.filters).length
      ? '<li>No confirmed alerts pass the filters.</li>' : '<li>No confirmed alerts.</li>';
  }
  patches.forEach((p, i) => {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.dataset.index = i;
    b.textContent = `${p.detection_date ?? '?'} · ${haText(p.area_ha)}`;
    b.title = `${p.pixels} pixels`;
    b.addEventListener('click', () => zoomTo(p));
    li.appendChild(b);
    list.appendChild(li);
  });
}

function haText(ha) {
  return `${ha >= 100 ? ha.toFixed(0) : ha.toFixed(2)} ha`;
}

function zoomTo(p) {
  const [w, s, e, n] = p.bbox;
  const cam = state.map.cameraForBounds([[w, s], [e, n]], { padding: 60, maxZoom: 16 });
  state.map.easeTo({ center: [p.longitude, p.latitude], zoom: cam ? cam.zoom : 15, duration: 500 });
}

// The list shows what the map shows: the same publication and filters as the alert tiles.
let newestRequest = 0;
async function loadNewest() {
  const mine = ++newestRequest;
  const q = new URLSearchParams({ limit: 500, ...state.filters });
  if (state.version) q.set('version', state.version);
  try {
    const body = await getJSON(`alerts/newest?${q}`);
    if (mine !== newestRequest) return state.newest;  // a later filter or version won
    state.newest = body.patches;
    renderNewest(body.patches.slice(0, 20));
    return body.patches;
  } catch (err) {
    if (mine === newestRequest) $('newest').innerHTML = `<li>${esc(err)}</li>`;
    return [];
  }
}

// ---- a background that shows where you are, offline: Natural Earth land and borders (world-atlas 1:50m,
// vendored), a graticule, and the monitored area's outline. Land is coarse (a few km): orientation, not detail.
const WORLD = 'static/vendor/world-atlas-2.0.2/countries-50m.json';
const BG = { sea: '#dbe6ec', land: '#f4f2ec', border: '#a89f91', graticule: '#c3ccd3', outline: '#2e5b2a' };

function graticule([w, s, e, n]) {
  const lines = [];
  const add = (step, x0, x1, y0, y1) => {
    for (let x = Math.ceil(x0 / step) * step; x <= x1 + 1e-9; x += step) {
      lines.push({ type: 'Feature', properties: { step }, geometry: { type: 'LineString', coordinates: [[x, y0], [x, y1]] } });
    }
    for (let y = Math.ceil(y0 / step) * step; y <= y1 + 1e-9; y += step) {
      lines.push({ type: 'Feature', properties: { step }, geometry: { type: 'LineString', coordinates: [[x0, y], [x1, y]] } });
    }
  };
  add(10, -180, 180, -80, 80);
  add(1, Math.floor(w) - 10, Math.ceil(e) + 10, Math.max(-85, Math.floor(s) - 10), Math.min(85, Math.ceil(n) + 10));
  add(0.1, Math.floor(w) - 1, Math.ceil(e) + 1, Math.floor(s) - 1, Math.ceil(n) + 1);
  return { type: 'FeatureCollection', features: lines };
}

async function addBackground(map, bounds) {
  const [w, s, e, n] = bounds;
  const first = map.getStyle().layers.find((l) => l.id !== 'background')?.id;
  const line = (id, source, paint, extra = {}) => map.addLayer({ id, type: 'line', source, paint, ...extra }, first);
  map.addSource('graticule', { type: 'geojson', data: graticule(bounds) });
  line('graticule-10', 'graticule', { 'line-color': BG.graticule, 'line-width': 1 }, { filter: ['==', ['get', 'step'], 10] });
  line('graticule-1', 'graticule', { 'line-color': BG.graticule, 'line-width': 0.8 },
    { filter: ['==', ['get', 'step'], 1], minzoom: 5 });
  line('graticule-01', 'graticule', { 'line-color': BG.graticule, 'line-width': 0.6, 'line-dasharray': [2, 2] },
    { filter: ['==', ['get', 'step'], 0.1], minzoom: 9 });
  const ring = [[w, s], [e, s], [e, n], [w, n], [w, s]];
  map.addSource('area', { type: 'geojson', data: { type: 'Feature', properties: {}, geometry: { type: 'LineString', coordinates: ring } } });
  map.addLayer({ id: 'area-outline', type: 'line', source: 'area', paint: { 'line-color': BG.outline, 'line-width': 2 } },
    'alerts');
  try {
    const topo = await (await fetch(BASE + WORLD)).json();
    const land = topojson.feature(topo, topo.objects.land);
    const borders = topojson.mesh(topo, topo.objects.countries, (a, b) => a !== b);
    map.addSource('land', { type: 'geojson', data: land, attribution: 'Natural Earth' });
    map.addSource('borders', { type: 'geojson', data: borders });
    map.addLayer({ id: 'land', type: 'fill', source: 'land', paint: { 'fill-color': BG.land } }, 'graticule-10');
    map.addLayer({ id: 'borders', type: 'line', source: 'borders', paint: { 'line-color': BG.border, 'line-width': 1 } },
      'graticule-10');
  } catch (err) {
    // without the world outline the map still works: the graticule and the area's outline remain
  }
  state.background = true;
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

function setupSliders(latestIso, patches, view) {
  const max = dayOf(latestIso);
  const dated = patches.filter((p) => p.detection_date).map((p) => dayOf(p.detection_date));
  let min = Math.min(max - 30, dated.length ? Math.min(...dated) - 1 : max - 365);
  if (view.after !== undefined) min = Math.min(min, view.after - 1);  // a shared link's window stays whole
  for (const id of ['after', 'before']) {
    $(id).min = min;
    $(id).max = max;
  }
  $('after').value = view.after ?? min;
  $('before').value = Math.min(view.before ?? max, max);
  if (view.conf !== undefined) $('min-conf').value = view.conf;
  onFilterInput();
  clearTimeout(filterTimer);
}

async function main() {
  const health = await getJSON('healthz');
  state.health = health;
  setStatus(health);
  loadLegend();
  const map = new maplibregl.Map({
    container: 'map',
    style: {
      version: 8,
      sources: {},
      layers: [{ id: 'background', type: 'background', paint: { 'background-color': BG.sea } }],
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
  const view = readHash();
  const versions = (await getJSON('layers'))[0]?.versions ?? [];
  state.latest = health.latest_version;
  state.pinned = view.version && view.version !== state.latest && versions.includes(view.version) ? view.version : null;
  state.version = state.pinned || state.latest;
  fillVersions(versions);
  setStatus(health);
  const tj = await getJSON('layers/alerts/WebMercatorQuad/tilejson.json');
  const [w, s, e, n] = tj.bounds;
  const raster = { type: 'raster', tileSize: 256, minzoom: tj.minzoom ?? 0, maxzoom: Math.min(tj.maxzoom ?? 16, 16), bounds: tj.bounds };
  map.addSource('context', { ...raster, tiles: [contextUrl()], attribution: 'nrt-alerts' });
  map.addSource('alerts', { ...raster, tiles: [alertUrl({})] });
  const paint = { 'raster-resampling': 'nearest', 'raster-fade-duration': 0 };
  map.addLayer({ id: 'context', type: 'raster', source: 'context', paint });
  map.addLayer({ id: 'alerts', type: 'raster', source: 'alerts', paint });
  addBackground(map, tj.bounds);
  if (view.center) map.jumpTo({ center: view.center, zoom: view.zoom });
  else map.fitBounds([[w, s], [e, n]], { padding: 20, animate: false });
  map.on('click', onClick);
  map.getCanvas().style.cursor = 'crosshair';
  $('panel-close').addEventListener('click', () => {
    $('panel').hidden = true;
    if (state.marker) state.marker.remove();
  });

  // The sliders span every alert of the publication, before any filter.
  const all = await getJSON(`alerts/newest?limit=500&version=${state.version}`);
  setupSliders(health.latest_datetime, all.patches, view);
  await applyFilters();
  for (const id of ['after', 'before', 'min-conf']) $(id).addEventListener('input', onFilterInput);
  $('version').addEventListener('change', (ev) => chooseVersion(ev.target.value));
  map.on('moveend', writeHash);
  state.ready = true;
  writeHash();
  pollHealth();
}

// The scheduler publishes new versions while the page is open: refresh the alerts when 'latest' moves.
function pollHealth() {
  setInterval(async () => {
    try {
      const h = await getJSON('healthz');
      if (!h.latest_version || h.latest_version === state.latest) return;
      if (!state.map.getSource('alerts')) {
        location.reload();  // first publication since the page opened
        return;
      }
      state.latest = h.latest_version;
      state.health = h;
      fillVersions((await getJSON('layers'))[0]?.versions ?? []);
      setStatus(h);
      if (state.pinned) return;  // the analyst looks at an earlier publication: leave it
      state.version = h.latest_version;
      refreshAlerts();
      loadNewest();
    } catch (err) {
      // the server restarts now and then: try again on the next tick
    }
  }, 10000);
}

main().catch((err) => { $('status').textContent = `Error: ${err}`; });
