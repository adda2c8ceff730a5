/* papertopics document map.
 *
 * Draws the compact arrays of #map-data as one WebGL trace per topic and adds what plotly
 * lacks: a hover card (title, authors, date, topic, abstract start) written with
 * textContent, search over titles and authors, topic and date filters, and topic names
 * whose level follows the zoom (groups of topics when zoomed out, topics when zoomed in).
 *
 * The date filter is one state (state.from, state.to) with two controls: the From/To date
 * inputs and the histogram of papers per listing date under the map (#date-histogram).
 * Brushing bars sets the range to the whole bars it touches and writes it into the inputs;
 * typing dates shades the bars outside the range; a click on the histogram clears it.
 * Papers are compared by day numbers (YYYYMMDD) computed once, not by strings per redraw.
 *
 * A map of more papers than the report's points cap draws a sample of them (D.n of D.total)
 * over a density layer of all of them (D.density); the others are in D.restFile
 * (map-papers.js), loaded on the first search and appended after the drawn papers (indices
 * D.n and up): search finds them and draws them as matches; they have no authors or abstract.
 */
(function () {
  'use strict';
  performance.mark('map-script');
  var gd = document.getElementById('document-map');
  var D = JSON.parse(document.getElementById('map-data').textContent);
  var layout = JSON.parse(document.getElementById('map-layout').textContent);
  var abstracts = null; // parsed just after the first draw: the map is usable sooner
  var topics = D.topics;
  var n = D.n; // papers drawn as points: indices 0..n-1, by topic slices
  var total = n; // papers known to this page: n + the rest once D.restFile is loaded
  var rest = D.restFile ? 'waiting' : 'none'; // none | waiting | loading | loaded | failed
  performance.mark('map-data-parsed');
  var ISO = /^\d{4}-\d{2}(-\d{2})?$/;
  var HTTP = /^https?:\/\//i;
  var ZOOM_FOR_FINE = 0.45; // topic names replace group names below this share of the full width
  var MIN_QUERY = 2;
  var MAX_DRAWN_MATCHES = 5000;
  var MAX_LISTED_MATCHES = 20;
  var PAD = 0.06 * Math.max(D.extent[0], D.extent[1], 1);
  var FULL_X = [-PAD, D.extent[0] + PAD];
  var FULL_Y = [-PAD, D.extent[1] + PAD];
  var CONFIG = {
    displaylogo: false, responsive: true, scrollZoom: true, doubleClick: 'reset',
    modeBarButtonsToRemove: ['select2d', 'lasso2d', 'autoScale2d']
  };

  var X = Float32Array.from(D.x);
  var Y = Float32Array.from(D.y);
  var topicIndex = new Int32Array(n);
  var ids = D.id;
  topics.forEach(function (t, k) { for (var i = t.start; i < t.end; i++) { topicIndex[i] = k; } });
  var lowerTitles = null;
  var lowerAuthors = null;
  var state = { topic: 'all', from: '', to: '', fromDay: 0, toDay: 99999999, query: '', matches: [] };
  var dayLo = null; // per paper, the first and last day of its date as YYYYMMDD (-1: no ISO date)
  var dayHi = null;
  var H = D.dateHistogram; // papers per listing date: {period, start, end, count}, or null
  var DAY_MS = 86400000;
  var traceIds = []; // per trace, the paper index of each of its points
  var level = null;
  var revision = 0;

  var search = document.getElementById('map-search');
  var searchCount = document.getElementById('search-count');
  var results = document.getElementById('search-results');
  var topicSelect = document.getElementById('map-topic');
  var fromInput = document.getElementById('map-from');
  var toInput = document.getElementById('map-to');
  var card = document.getElementById('hover-card');
  var histogram = document.getElementById('date-histogram');

  function paperUrl(i) {
    var url = D.urlPrefix[D.urlIndex[i]] + D.url[i];
    return HTTP.test(url) ? url : '';
  }

  function dayNumber(iso) {
    return Number(iso.slice(0, 4)) * 10000 + Number(iso.slice(5, 7)) * 100 + Number(iso.slice(8, 10) || 1);
  }

  function paperDays() {
    if (dayLo && dayLo.length === total) { return; }
    dayLo = new Int32Array(total);
    dayHi = new Int32Array(total);
    for (var i = 0; i < total; i++) {
      var d = D.date[i];
      if (!ISO.test(d)) { dayLo[i] = -1; dayHi[i] = -1; continue; } // a raw date ("Aug 12") has no place in a range
      dayLo[i] = dayNumber(d);
      dayHi[i] = d.length === 7 ? dayLo[i] + 30 : dayLo[i]; // a month-only date spans its month
    }
  }

  function datePasses(i) {
    if (!state.from && !state.to) { return true; }
    return dayLo[i] >= 0 && dayHi[i] >= state.fromDay && dayLo[i] <= state.toDay;
  }

  function topicShown(t) { return state.topic === 'all' || String(t.id) === state.topic; }

  function passes(i) { return topicShown(topics[topicIndex[i]]) && datePasses(i); }

  function buildTraces() {
    var drawnMatches = [];
    for (var m = 0; m < state.matches.length && drawnMatches.length < MAX_DRAWN_MATCHES; m++) {
      if (passes(state.matches[m])) { drawnMatches.push(state.matches[m]); }
    }
    var dim = drawnMatches.length > 0;
    var traces = [];
    traceIds = [];
    topics.forEach(function (t, k) {
      var ids = [];
      var shown = topicShown(t);
      if (shown) { for (var i = t.start; i < t.end; i++) { if (datePasses(i)) { ids.push(i); } } }
      var previous = gd.data && gd.data[k];
      traces.push(points(ids, {
        name: t.legend,
        visible: !shown ? false : (previous && previous.visible === 'legendonly' ? 'legendonly' : true),
        marker: {
          color: t.color,
          size: t.id === -1 ? Math.max(2, D.markerSize - 2) : D.markerSize,
          opacity: dim ? 0.12 : (t.id === -1 ? 0.5 : 0.85)
        }
      }));
    });
    traces.push(points(drawnMatches, {
      name: 'Search matches',
      showlegend: false,
      marker: {
        color: drawnMatches.map(function (i) { return topics[topicIndex[i]].color; }),
        size: D.markerSize + 6,
        opacity: 1,
        line: { width: 2, color: '#111' }
      }
    }));
    if (D.density) { traces.push(densityTrace()); } // last: the curve numbers of points stay theirs
    return traces;
  }

  function densityTrace() { // every paper, drawn and not, as grey cells under the points
    return {
      type: 'heatmap', z: D.density.z, x0: D.density.x0, dx: D.density.dx, y0: D.density.x0, dy: D.density.dx,
      colorscale: [[0, 'rgb(235,235,235)'], [1, 'rgb(90,90,90)']], zsmooth: 'best', showscale: false,
      hoverinfo: 'skip', name: 'All papers (density)', showlegend: false, opacity: 0.6
    };
  }

  function points(ids, extra) {
    var xs = new Float32Array(ids.length);
    var ys = new Float32Array(ids.length);
    for (var j = 0; j < ids.length; j++) { xs[j] = X[ids[j]]; ys[j] = Y[ids[j]]; }
    traceIds.push(ids);
    var trace = { type: 'scattergl', mode: 'markers', x: xs, y: ys, hoverinfo: 'none' };
    Object.keys(extra).forEach(function (key) { trace[key] = extra[key]; });
    return trace;
  }

  function zoomLevel() {
    if (!D.labels.coarse.length || state.topic !== 'all') { return 'fine'; }
    var range = (gd.layout && gd.layout.xaxis && gd.layout.xaxis.range) || FULL_X;
    return (range[1] - range[0]) < ZOOM_FOR_FINE * (FULL_X[1] - FULL_X[0]) ? 'fine' : 'coarse';
  }

  function annotations(which) {
    var on = {};
    topics.forEach(function (t, k) {
      var trace = gd.data && gd.data[k];
      var visible = trace ? trace.visible === true : topicShown(t);
      if (visible && traceIds[k] && traceIds[k].length) { on[which === 'coarse' ? t.coarse : t.id] = true; }
    });
    return D.labels[which].filter(function (label) { return on[label.group]; }).map(function (label) {
      return {
        x: label.x, y: label.y, text: label.text, showarrow: false, captureevents: false,
        font: { size: which === 'coarse' ? 15 : 12, color: '#111' },
        bgcolor: 'rgba(255,255,255,0.78)', borderpad: 2
      };
    });
  }

  function refreshLabels(force) {
    var next = zoomLevel();
    if (!force && next === level) { return; }
    level = next;
    gd.setAttribute('data-label-level', level);
    Plotly.relayout(gd, { annotations: annotations(level) });
  }

  function redraw(ranges) {
    var traces = buildTraces();
    var next = Object.assign({}, gd.layout || layout, { datarevision: ++revision });
    if (ranges) {
      next.xaxis = Object.assign({}, next.xaxis, { range: ranges[0], autorange: false });
      next.yaxis = Object.assign({}, next.yaxis, { range: ranges[1], autorange: false });
    }
    return Plotly.react(gd, traces, next, CONFIG).then(function () { refreshLabels(true); });
  }

  function rangesAround(ids) {
    if (!ids.length) { return [FULL_X, FULL_Y]; }
    var x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    ids.forEach(function (i) {
      x0 = Math.min(x0, X[i]); x1 = Math.max(x1, X[i]); y0 = Math.min(y0, Y[i]); y1 = Math.max(y1, Y[i]);
    });
    var pad = Math.max(x1 - x0, y1 - y0, D.grid / 50) * 0.15;
    return [[x0 - pad, x1 + pad], [y0 - pad, y1 + pad]];
  }

  /* -------------------------------------------------------------- hover card and click */
  function line(className, text) {
    var div = document.createElement('div');
    div.className = className;
    div.textContent = text;
    card.appendChild(div);
    return div;
  }

  function showCard(i, mouse) {
    var t = topics[topicIndex[i]];
    card.textContent = '';
    line('card-title', D.title[i] || '(untitled)');
    if (D.authors[i]) { line('card-authors', D.authors[i]); }
    var meta = line('card-meta', '');
    var swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.style.background = t.color;
    meta.appendChild(swatch);
    meta.appendChild(document.createTextNode(t.name + (D.date[i] ? ' · ' + D.date[i] : '')));
    var abstract = abstracts ? abstracts[i] : '';
    if (abstract) { line('card-abstract', abstract); }
    line('card-hint', paperUrl(i) ? 'Click the point to open the paper' : 'No link for this paper');
    card.hidden = false;
    var x = mouse ? mouse.clientX : window.innerWidth / 2;
    var y = mouse ? mouse.clientY : window.innerHeight / 2;
    var width = card.offsetWidth, height = card.offsetHeight;
    card.style.left = Math.max(4, Math.min(x + 16, window.innerWidth - width - 8)) + 'px';
    card.style.top = Math.max(4, Math.min(y + 16, window.innerHeight - height - 8)) + 'px';
  }

  function paperAt(event) {
    var point = event && event.points && event.points[0];
    if (!point) { return undefined; }
    var ids = traceIds[point.curveNumber];
    return ids ? ids[point.pointNumber] : undefined;
  }

  /* -------------------------------------------------------------- search */
  function loadRest() { // map-papers.js: the papers not drawn, appended after the drawn ones
    if (rest !== 'waiting') { return Promise.resolve(); }
    rest = 'loading';
    searchCount.textContent = 'Loading the other ' + (D.total - n) + ' papers…';
    return new Promise(function (resolve) {
      var script = document.createElement('script');
      script.src = D.restFile;
      script.onload = function () {
        var R = window.papertopicsMapRest;
        var grow = function (a, b) { var out = new Float32Array(a.length + b.length); out.set(a); out.set(b, a.length); return out; };
        X = grow(X, R.x);
        Y = grow(Y, R.y);
        var ti = new Int32Array(n + R.n);
        ti.set(topicIndex);
        ti.set(R.topicIndex, n);
        topicIndex = ti;
        ids = ids.concat(R.id);
        D.title = D.title.concat(R.title);
        D.date = D.date.concat(R.date);
        D.urlIndex = D.urlIndex.concat(R.urlIndex);
        D.url = D.url.concat(R.url);
        total = n + R.n;
        lowerTitles = null;
        dayLo = null;
        if (state.from || state.to) { paperDays(); }
        rest = 'loaded';
        resolve();
      };
      script.onerror = function () { rest = 'failed'; resolve(); };
      document.head.appendChild(script);
    });
  }

  function runSearch() {
    var query = search.value.trim().toLowerCase();
    if (query.length >= MIN_QUERY && rest === 'waiting') { return loadRest().then(runSearch); }
    state.query = query;
    state.matches = [];
    if (query.length >= MIN_QUERY) {
      if (!lowerTitles) {
        lowerTitles = D.title.map(function (s) { return s.toLowerCase(); });
        lowerAuthors = D.authors.map(function (s) { return s.toLowerCase(); }); // drawn papers only
      }
      for (var i = 0; i < total; i++) {
        if (lowerTitles[i].indexOf(query) >= 0 || (i < n && lowerAuthors[i].indexOf(query) >= 0) ||
            ids[i].toLowerCase() === query) { state.matches.push(i); }
      }
    }
    listResults();
    return redraw();
  }

  function listResults() {
    results.textContent = '';
    if (state.query.length < MIN_QUERY) {
      searchCount.textContent = '';
      results.hidden = true;
      return;
    }
    var shown = state.matches.filter(passes);
    var found = state.matches.length;
    searchCount.textContent = found === 1 ? '1 paper matches' : found + ' papers match';
    if (shown.length < found) { searchCount.textContent += ' (' + shown.length + ' within the filters)'; }
    if (rest === 'failed') { searchCount.textContent += ' (only among the drawn papers: ' + D.restFile + ' did not load)'; }
    shown.slice(0, MAX_LISTED_MATCHES).forEach(function (i) {
      var item = document.createElement('li');
      var button = document.createElement('button');
      button.type = 'button';
      button.textContent = D.title[i] || '(untitled)';
      var topic = document.createElement('span');
      topic.className = 'muted';
      topic.textContent = ' — ' + topics[topicIndex[i]].name;
      button.appendChild(topic);
      button.addEventListener('click', function () {
        var r = D.grid / 25;
        redraw([[X[i] - r, X[i] + r], [Y[i] - r, Y[i] + r]]).then(function () {
          var box = button.getBoundingClientRect();
          showCard(i, { clientX: box.right, clientY: box.top });
        });
      });
      item.appendChild(button);
      results.appendChild(item);
    });
    results.hidden = shown.length === 0;
  }

  /* -------------------------------------------------------------- filters */
  function setTopic(value) {
    state.topic = value;
    var ids = [];
    if (value !== 'all') {
      topics.forEach(function (t) { if (String(t.id) === value) { for (var i = t.start; i < t.end; i++) { ids.push(i); } } });
    }
    listResults();
    return redraw(value === 'all' ? [FULL_X, FULL_Y] : rangesAround(ids));
  }

  /* -------------------------------------------------------------- the date filter and its histogram */
  function setDates(from, to) {
    state.from = from || '';
    state.to = to || '';
    state.fromDay = state.from ? dayNumber(state.from) : 0;
    state.toDay = state.to ? dayNumber(state.to) : 99999999;
    if (fromInput) { fromInput.value = state.from; toInput.value = state.to; }
    paperDays();
    shadeBars();
    listResults();
    return redraw();
  }

  function readDates() { return setDates(fromInput.value, toInput.value); }

  function barsIn(fromDay, toDay) {
    var bars = [];
    for (var k = 0; H && k < H.start.length; k++) {
      if (dayNumber(H.end[k]) >= fromDay && dayNumber(H.start[k]) <= toDay) { bars.push(k); }
    }
    return bars;
  }

  function shadeBars() {
    if (!histogram || !histogram.data) { return; }
    var all = !state.from && !state.to;
    // The drag's outline goes: plotly would re-select by it (bars whose centre it holds) on each update.
    Plotly.update(histogram, { selectedpoints: [all ? null : barsIn(state.fromDay, state.toDay)] }, { selections: [] });
  }

  function dayOf(value) { // a date axis value ("2024-03-05 13:20:00.5", or ms) as "YYYY-MM-DD"
    if (typeof value === 'number') { return new Date(value).toISOString().slice(0, 10); }
    return String(value).slice(0, 10);
  }

  function brushed(event) {
    var range = event && event.range && event.range.x;
    if (!range) { return; }
    var from = dayOf(range[0]), to = dayOf(range[1]);
    var bars = barsIn(dayNumber(from), dayNumber(to));
    // The range snaps to the whole bars it touches; a brush over no bar keeps its own days (no paper).
    if (bars.length) { from = H.start[bars[0]]; to = H.end[bars[bars.length - 1]]; }
    setDates(from, to);
  }

  function drawHistogram() {
    if (!histogram || !H) { return; }
    var hist = JSON.parse(document.getElementById('histogram-layout').textContent);
    var trace = {
      type: 'bar',
      x: H.start,
      y: H.count,
      // Each bar covers its days: from its first day for (last - first + 1) days.
      width: H.start.map(function (s, k) { return Date.parse(H.end[k]) - Date.parse(s) + DAY_MS; }),
      offset: 0,
      marker: { color: '#4c78a8' },
      unselected: { marker: { opacity: 0.25 } },
      hovertext: H.start.map(function (s, k) {
        return (H.period === 'day' ? s : s + ' to ' + H.end[k]) + ': ' + H.count[k] + (H.count[k] === 1 ? ' paper' : ' papers');
      }),
      hoverinfo: 'text',
      name: 'papers'
    };
    Plotly.newPlot(histogram, [trace], hist, { displayModeBar: false, responsive: true, doubleClick: false })
      .then(function () {
        histogram.on('plotly_selected', brushed);
        // A click (a press and release without a drag) on the bars shows every date again.
        var pressed = null;
        histogram.addEventListener('mousedown', function (e) { pressed = [e.clientX, e.clientY]; }, true);
        histogram.addEventListener('click', function (e) {
          var still = pressed && Math.abs(e.clientX - pressed[0]) + Math.abs(e.clientY - pressed[1]) < 4;
          if (still && (state.from || state.to)) { setDates('', ''); }
        }, true);
        shadeBars(); // dates typed before the bars were drawn
      });
  }

  function debounce(fn, ms) {
    var timer = null;
    return function () { clearTimeout(timer); timer = setTimeout(fn, ms); };
  }

  /* -------------------------------------------------------------- start */
  var wanted = /^#topic=(-?\d+)$/.exec(window.location.hash);
  if (wanted && topicSelect && topicSelect.querySelector('option[value="' + wanted[1] + '"]')) {
    state.topic = wanted[1];
    topicSelect.value = wanted[1];
  }
  layout.xaxis = Object.assign({}, layout.xaxis, { range: FULL_X.slice(), autorange: false });
  layout.yaxis = Object.assign({}, layout.yaxis, { range: FULL_Y.slice(), autorange: false });
  layout.showlegend = D.legend;
  var firstTraces = buildTraces();
  level = zoomLevel();
  layout.annotations = annotations(level); // drawn with the points: no second pass before the map is usable
  gd.setAttribute('data-label-level', level);

  Plotly.newPlot(gd, firstTraces, layout, CONFIG).then(function () {
    performance.mark('map-plotted');
    return state.topic !== 'all' ? setTopic(state.topic) : null;
  }).then(function () {
    gd.on('plotly_relayout', function (event) {
      if (event && Object.keys(event).some(function (key) { return key.indexOf('xaxis') === 0; })) { refreshLabels(false); }
    });
    gd.on('plotly_restyle', function () { refreshLabels(true); }); // a legend click hid or showed a topic
    gd.on('plotly_hover', function (event) {
      var i = paperAt(event);
      if (i !== undefined) { showCard(i, event.event); }
    });
    gd.on('plotly_unhover', function () { card.hidden = true; });
    gd.on('plotly_click', function (event) {
      var i = paperAt(event);
      var url = i === undefined ? '' : paperUrl(i);
      if (url) { window.open(url, '_blank', 'noopener,noreferrer'); }
    });
    search.addEventListener('input', debounce(runSearch, 150));
    search.addEventListener('keydown', function (event) { if (event.key === 'Enter') { runSearch(); } });
    if (topicSelect) { topicSelect.addEventListener('change', function () { setTopic(topicSelect.value); }); }
    if (fromInput) { fromInput.addEventListener('change', readDates); }
    if (toInput) { toInput.addEventListener('change', readDates); }
    document.getElementById('map-reset').addEventListener('click', function () {
      search.value = '';
      state.query = '';
      state.matches = [];
      state.from = '';
      state.to = '';
      if (fromInput) { fromInput.value = ''; toInput.value = ''; }
      shadeBars();
      if (topicSelect) { topicSelect.value = 'all'; }
      setTopic('all');
    });
    window.papertopicsMap = {
      readyMs: performance.now(),
      points: function () {
        return traceIds.slice(0, topics.length).reduce(function (sum, ids) { return sum + ids.length; }, 0);
      },
      highlighted: function () { return traceIds[traceIds.length - 1].slice(); },
      paperOf: function (curve, point) { return traceIds[curve][point]; },
      title: function (i) { return D.title[i]; },
      drawn: function () { return n; },
      total: function () { return D.total; },
      restState: function () { return rest; },
      labelLevel: function () { return level; },
      dateRange: function () { return [state.from, state.to]; },
      search: runSearch
    };
    gd.setAttribute('data-ready', '1');
    setTimeout(function () {
      abstracts = JSON.parse(document.getElementById('map-abstracts').textContent);
      drawHistogram(); // after the map is usable: the bars are not needed to read it
    }, 0);
  });
}());
