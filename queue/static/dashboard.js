/* Supervisor dashboard: signs in with the shared staff session, then polls the centre's day figures
   (GET /staff/centres/{id}/stats, StatsSchema in queue/schemas.py) every ~15 s and draws them with Chart.js
   (served from the app). A figure the day does not have yet (no wait, no rating) is shown as "—". */
(function () {
  "use strict";
  var body = document.body;
  var lang = body.dataset.lang === "en" ? "en" : "ar";
  var rtl = lang === "ar";
  var T = JSON.parse(body.dataset.texts || "{}");
  var every = Number(body.dataset.pollMs) || 15000;
  var session = new window.StaffSession(lang);
  var state = { account: null, centre: null };
  var charts = {};
  var timer = null;
  var COLOURS = { issued: "#0b6e99", served: "#1b6e3c", mean: "#f5a623", p90: "#b3261e", open: "#1b6e3c", paused: "#f5a623", serving: "#0b6e99", used: "#7a4fd6", left: "#d5dde3" };

  function el(id) { return document.getElementById(id); }

  function fill(template, values) {
    return String(template || "").replace(/\{(\w+)\}/g, function (_, key) { return values[key] === undefined ? "" : String(values[key]); });
  }

  function say(text) {
    el("message").textContent = text || "";
    el("message").hidden = !text;
  }

  function show(section) {
    el("login").hidden = section !== "login";
    el("board").hidden = section !== "board";
    el("logout").hidden = section === "login";
  }

  function number(value) { return value === null || value === undefined ? "—" : String(value); }

  function signOut() {
    clearTimeout(timer);
    session.logout();
    state = { account: null, centre: null };
    el("who").textContent = "";
    show("login");
  }

  function hourLabel(hour) { return (hour < 10 ? "0" : "") + hour + ":00"; }

  function serviceName(row) { return lang === "ar" ? row.name_ar : row.name_en; }

  function baseOptions(extra) {
    var options = {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      locale: lang === "ar" ? "ar-JO-u-nu-latn" : "en-GB",  // Latin digits, as the figures and ticket numbers
      plugins: { legend: { rtl: rtl, textDirection: rtl ? "rtl" : "ltr", position: "bottom" },
                 tooltip: { rtl: rtl, textDirection: rtl ? "rtl" : "ltr" } }
    };
    Object.keys(extra || {}).forEach(function (key) { options[key] = extra[key]; });
    return options;
  }

  function draw(id, type, labels, datasets, options) {
    var chart = charts[id];
    if (!chart) {
      charts[id] = new window.Chart(el(id), { type: type, data: { labels: labels, datasets: datasets }, options: baseOptions(options) });
      return;
    }
    chart.data.labels = labels;
    chart.data.datasets = datasets;
    chart.update("none");
  }

  function render(stats) {
    var byHour = stats.by_hour;
    var byService = stats.by_service;
    var rating = stats.satisfaction;
    var urgent = stats.urgent_reserve;
    var floor = stats.counters;
    var waitingNow = byService.reduce(function (sum, row) { return sum + row.waiting; }, 0);

    el("f-issued").textContent = number(stats.tickets);
    el("f-served").textContent = number(stats.served);
    el("f-waiting").textContent = number(waitingNow);
    el("f-wait").textContent = number(stats.wait_minutes.mean);
    el("f-no-show").textContent = stats.no_show_rate === null ? "—" : (Math.round(stats.no_show_rate * 1000) / 10) + "%";
    el("f-satisfaction").textContent = rating.mean === null ? "—" : Number(rating.mean).toFixed(1) + " / 5";
    el("f-ratings").textContent = rating.count ? fill(T.ratings, { n: rating.count }) : "";
    el("f-urgent").textContent = urgent.used + " / " + urgent.total;
    el("f-counters").textContent = [floor.open, floor.paused, floor.serving].join(" · ");

    draw("chart-hours", "bar", byHour.map(function (h) { return hourLabel(h.hour); }), [
      { label: T.issued, data: byHour.map(function (h) { return h.issued; }), backgroundColor: COLOURS.issued },
      { label: T.served, data: byHour.map(function (h) { return h.served; }), backgroundColor: COLOURS.served }
    ], { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } });

    var waited = byService.filter(function (s) { return s.mean_wait_minutes !== null; });
    draw("chart-waits", "bar", waited.map(serviceName), [
      { label: T.meanWait, data: waited.map(function (s) { return s.mean_wait_minutes; }), backgroundColor: COLOURS.mean },
      { label: T.p90Wait, data: waited.map(function (s) { return s.p90_wait_minutes; }), backgroundColor: COLOURS.p90 }
    ], { indexAxis: "y", scales: { x: { beginAtZero: true, reverse: rtl }, y: { position: rtl ? "right" : "left" } } });

    draw("chart-counters", "doughnut", [T.open, T.paused, T.serving], [
      // Disjoint slices: `open` counts every open counter, the paused and serving ones included.
      { data: [floor.open - floor.paused - floor.serving, floor.paused, floor.serving], backgroundColor: [COLOURS.open, COLOURS.paused, COLOURS.serving] }
    ]);

    draw("chart-urgent", "doughnut", [T.used, T.left], [
      { data: [urgent.used, Math.max(0, urgent.total - urgent.used)], backgroundColor: [COLOURS.used, COLOURS.left] }
    ]);

    var rows = el("services-table").querySelector("tbody");
    rows.textContent = "";
    byService.forEach(function (s) {
      var tr = document.createElement("tr");
      tr.dataset.service = s.service_code;
      [serviceName(s), s.issued, s.served, s.waiting, s.mean_wait_minutes, s.p90_wait_minutes].forEach(function (value, i) {
        var td = document.createElement(i ? "td" : "th");
        if (i) { td.className = "n"; td.dir = "ltr"; } else { td.scope = "row"; }
        td.textContent = i ? number(value) : value;
        tr.appendChild(td);
      });
      rows.appendChild(tr);
    });
    el("updated").textContent = fill(T.updated, { time: new Date().toLocaleTimeString(lang === "ar" ? "ar-JO" : "en-GB", { timeZone: stats.timezone }) });
    body.dataset.refreshes = String(Number(body.dataset.refreshes || 0) + 1);
  }

  function refresh() {
    clearTimeout(timer);
    var centre = encodeURIComponent(state.account.centre_id);
    return session.request("GET", "/staff/centres/" + centre + "/stats").then(function (stats) {
      say("");
      render(stats);
    }).catch(function (error) { say(error.message); }).then(function () {
      if (state.account) { timer = setTimeout(refresh, every); }
    });
  }

  function load() {
    return session.me().then(function (account) {
      if (account.role !== "supervisor" || !account.centre_id) { throw new Error(T.supervisorsOnly); }
      if (session.followAccountLanguage(account)) { return new Promise(function () {}); }
      state.account = account;
      el("who").textContent = account.full_name;
      return session.request("GET", "/centres/" + encodeURIComponent(account.centre_id));
    }).then(function (centre) {
      state.centre = centre;
      el("centre-name").textContent = lang === "ar" ? centre.name_ar : centre.name_en;
      show("board");
      return refresh();
    });
  }

  el("login").addEventListener("submit", function (event) {
    event.preventDefault();
    say("");
    session.login(el("national_id").value.trim(), el("password").value)
      .then(function () { el("password").value = ""; return load(); })
      .catch(function (error) { say(error.message); if (session.signedIn() && error.message === T.supervisorsOnly) { show("login"); session.clear(); } });
  });
  el("logout").addEventListener("click", signOut);

  if (window.Chart) {
    window.Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    window.Chart.defaults.color = "#33454f";
  }
  if (session.signedIn()) {
    load().catch(function (error) { signOut(); say(error.message); });
  } else {
    show("login");
  }
})();
