/* papertopics overview: sort and filter the topic table; a click on a row opens its topic page. */
(function () {
  'use strict';
  var table = document.getElementById('topic-table');
  if (!table) { return; }
  var body = table.tBodies[0];
  var filter = document.getElementById('topic-filter');
  var count = document.getElementById('topic-count');
  var rows = Array.prototype.slice.call(body.rows);

  function cellValue(row, index, numeric) {
    var cell = row.cells[index];
    var raw = cell.getAttribute('data-value');
    if (raw === null) { raw = cell.textContent.trim(); }
    if (numeric) { var number = parseFloat(raw); return isNaN(number) ? -Infinity : number; }
    return raw.toLowerCase();
  }

  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
    var kind = th.getAttribute('data-sort');
    var button = th.querySelector('button');
    if (!kind || !button) { return; }
    button.addEventListener('click', function () {
      var numeric = kind === 'num';
      var current = th.getAttribute('aria-sort');
      var ascending = current ? current === 'descending' : !numeric;
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (other) { other.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
      rows.sort(function (a, b) {
        // The outlier row is not a topic: it stays at the bottom whatever the order.
        var outA = a.classList.contains('outliers'), outB = b.classList.contains('outliers');
        if (outA !== outB) { return outA ? 1 : -1; }
        var va = cellValue(a, index, numeric), vb = cellValue(b, index, numeric);
        var order = va < vb ? -1 : va > vb ? 1 : 0;
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });

  function applyFilter() {
    var query = filter.value.trim().toLowerCase();
    var shown = 0, topics = 0;
    rows.forEach(function (row) {
      var match = !query || row.textContent.toLowerCase().indexOf(query) >= 0;
      row.hidden = !match;
      if (!row.classList.contains('outliers')) { topics += 1; if (match) { shown += 1; } }
    });
    count.textContent = query ? shown + ' of ' + topics + ' topics' : topics + ' topics';
  }
  if (filter) { filter.addEventListener('input', applyFilter); }

  function open(row) {
    var href = row && row.getAttribute('data-href');
    if (href) { window.location.href = href; }
  }
  body.addEventListener('click', function (event) {
    if (event.target.closest('a, button, input, summary')) { return; }
    open(event.target.closest('tr'));
  });
  body.addEventListener('keydown', function (event) {
    if (event.key === 'Enter' && event.target.tagName === 'TR') { open(event.target); }
  });
}());
