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
