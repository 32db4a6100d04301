// heatlit dashboard: draws the curves from the JSON embedded in the page, applies the run selection to
// charts, tables and figures, and sorts tables by a click on a header. Plotly is inlined; no network.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("dashboard-data").textContent);
  var off = {};       // axis -> {label: true} for each unchecked value
  var runsOff = {};   // run id -> true when the run's own box is unchecked
  var runById = {};
  data.runs.forEach(function (r) { runById[r.id] = r; });
  var config = {displaylogo: false, responsive: true};

  function hidden(filters, run) {
    if (run && runsOff[run]) return true;
    for (var axis in filters) {
      if (off[axis] && off[axis][filters[axis]]) return true;
    }
    return false;
  }
  function shown(run) { return !hidden(run.filters, run.id); }

  function traces(series, xname) {
    var out = [];
    data.runs.forEach(function (r) {
      var c = r.curves[series];
      if (!c) return;
      out.push({
        x: c[0], y: c[1], name: r.label, meta: r.id, type: "scatter", mode: "lines+markers",
        line: {color: r.colour, dash: r.dash, width: 2}, marker: {size: 5}, visible: shown(r),
        hovertemplate: r.label + "<br>" + xname + " %{x}: %{y:.4g}<extra></extra>"
      });
    });
    return out;
  }

  function layout(title, xname, ytitle, lines, legend) {
    var xaxis = {title: {text: xname}};
    if (xname === "epoch") {  // whole epochs only, about ten ticks at most
      var last = Math.max.apply(null, lines.map(function (t) { return Math.max.apply(null, t.x); }));
      xaxis.tick0 = 0;
      xaxis.dtick = Math.max(1, Math.ceil(last / 10));
    }
    return {
      title: {text: title, font: {size: 14}, x: 0.01, xanchor: "left"}, height: legend ? 340 : 260, showlegend: legend,
      legend: {orientation: "h", y: -0.3}, margin: {l: 55, r: 15, t: 36, b: 42},
      xaxis: xaxis, yaxis: {title: {text: ytitle}}, hovermode: "closest"
    };
  }

  function fillSelect(select, options, labels, chosen) {
    options.forEach(function (o) {
      var el = document.createElement("option");
      el.value = o;
      el.textContent = labels[o] || o;
      if (o === chosen) el.selected = true;
      select.appendChild(el);
    });
  }

  var trainSelect = document.getElementById("train-series");
  var metricSelect = document.getElementById("val-metric");
  var trainDiv = document.getElementById("train-chart");
  var valBox = document.getElementById("val-charts");

  function drawTrain() {
    var series = trainSelect.value;
    if (!series) { trainDiv.style.display = "none"; return; }
    var lines = traces(series, "step");
    Plotly.react(trainDiv, lines, layout(series + " (per step)", "step", series, lines, true), config);
  }

  function drawVal() {
    var metric = metricSelect.value;
    valBox.innerHTML = "";
    if (!metric) return;
    data.decoders.forEach(function (decoder) {
      var lines = traces("val/" + decoder + "/" + metric, "epoch");
      if (!lines.length) return;  // a decoder scored at test time only has no curve
      var div = document.createElement("div");
      div.className = "chart";
      div.dataset.decoder = decoder;
      div.style.display = off.decoder && off.decoder[decoder] ? "none" : "";
      valBox.appendChild(div);
      Plotly.newPlot(div, lines,
        layout("val: " + decoder, "epoch", data.metricLabels[metric] || metric, lines, false), config);
    });
  }

  function charts() {
    return Array.prototype.slice.call(document.querySelectorAll(".js-plotly-plot"));
  }

  function apply() {
    charts().forEach(function (div) {
      if (!div.data || !div.data.length) return;
      Plotly.restyle(div, {visible: div.data.map(function (t) { return shown(runById[t.meta]); })});
    });
    document.querySelectorAll("#val-charts .chart").forEach(function (div) {
      var was = div.style.display;
      div.style.display = off.decoder && off.decoder[div.dataset.decoder] ? "none" : "";
      if (was === "none" && div.style.display === "") Plotly.Plots.resize(div);
    });
    document.querySelectorAll("[data-f], [data-run]").forEach(function (el) {
      var run = el.dataset.run ? runById[el.dataset.run] : null;
      var filters = el.dataset.f ? JSON.parse(el.dataset.f) : (run ? run.filters : {});
      // a run's own label stays visible when only its box is unchecked, so it can be checked again
      el.classList.toggle("off", hidden(filters, el.matches("label.run") ? null : el.dataset.run));
    });
  }

  document.getElementById("select").addEventListener("change", function (event) {
    var box = event.target;
    if (box.dataset.axis) {
      off[box.dataset.axis] = off[box.dataset.axis] || {};
      off[box.dataset.axis][box.value] = !box.checked;
    } else if (box.dataset.runToggle) {
      runsOff[box.dataset.runToggle] = !box.checked;
    }
    apply();
  });

  function sortValue(cell, numeric) {
    if (!cell || !cell.hasAttribute("data-v")) return null;
    var v = cell.getAttribute("data-v");
    return numeric ? parseFloat(v) : v;
  }

  document.querySelectorAll("table.sortable th").forEach(function (th) {
    th.addEventListener("click", function () {
      var table = th.closest("table");
      var index = Array.prototype.indexOf.call(th.parentNode.children, th);
      var numeric = th.dataset.numeric === "1";
      var ascending = !th.classList.contains("asc");
      table.querySelectorAll("th").forEach(function (h) { h.classList.remove("asc", "desc"); });
      th.classList.add(ascending ? "asc" : "desc");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = sortValue(a.cells[index], numeric), y = sortValue(b.cells[index], numeric);
        if (x === null || y === null) return (x === null) - (y === null);  // missing values last
        var c = numeric ? x - y : String(x).localeCompare(String(y), undefined, {numeric: true});
        return ascending ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });

  fillSelect(trainSelect, data.trainSeries, {}, data.trainSeries[0]);
  fillSelect(metricSelect, data.metrics, data.metricLabels, data.defaultMetric);
  trainSelect.addEventListener("change", drawTrain);
  metricSelect.addEventListener("change", drawVal);
  drawTrain();
  drawVal();
  document.body.dataset.ready = "1";
})();
