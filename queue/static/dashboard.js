/* Supervisor dashboard: signs in with the shared staff session, then polls the centre's day figures
   (GET /staff/centres/{id}/stats), its counters and its queue every ~15 s and draws them with Chart.js
   (served from the app). Fields a server does not send yet are shown as "—", never guessed. */
(function () {
  "use strict";
  var body = document.body;
  var lang = body.dataset.lang === "en" ? "en" : "ar";
  var rtl = lang === "ar";
  var T = JSON.parse(body.dataset.texts || "{}");
  var every = Number(body.dataset.pollMs) || 15000;
  var session = new window.StaffSession(lang);
  var state = { account: null, centre: null, names: {} };
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
    state = { account: null, centre: null, names: {} };
    el("who").textContent = "";
    show("login");
  }

  function hourLabel(hour) {
    if (typeof hour === "number") { return (hour < 10 ? "0" : "") + hour + ":00"; }
    var text = String(hour);
    return /^\d{1,2}$/.test(text) ? (text.length < 2 ? "0" : "") + text + ":00" : text;
  }

  function serviceName(code) { return state.names[code] || code; }

  function counterList(answer) {
    if (Array.isArray(answer)) { return answer; }
    return (answer && (answer.counters || answer.items)) || [];
  }

  function counterState(entry) {
    if (entry.state) { return entry.state; }
    if (!entry.open) { return "closed"; }
    if (entry.paused) { return "paused"; }
    return entry.current ? "serving" : "open";
  }

  function counterFigures(stats, counters) {
    if (stats.counters && typeof stats.counters === "object" && !Array.isArray(stats.counters)) { return stats.counters; }
    var figures = { open: 0, paused: 0, serving: 0 };
    counters.forEach(function (entry) {
      var s = counterState(entry);
      if (figures[s] !== undefined) { figures[s] += 1; }
    });
    return figures;
  }

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

  function render(stats, counters, snapshot) {
    var byHour = Array.isArray(stats.by_hour) ? stats.by_hour : [];
    var byService = Array.isArray(stats.by_service) ? stats.by_service : [];
    var waitingNow = snapshot && snapshot.waiting ? Object.keys(snapshot.waiting).reduce(function (sum, k) { return sum + (snapshot.waiting[k] || 0); }, 0) : null;
    var served = stats.served !== undefined ? stats.served : (stats.by_status ? stats.by_status.done || 0 : null);
    var rating = stats.satisfaction || stats.rating || {};
    var urgent = stats.urgent_reserve || null;
    var floor = counterFigures(stats, counters);

    el("f-issued").textContent = number(stats.tickets);
    el("f-served").textContent = number(served);
    el("f-waiting").textContent = number(waitingNow);
    el("f-wait").textContent = number(stats.wait_minutes ? stats.wait_minutes.mean : null);
    el("f-no-show").textContent = stats.no_show_rate === null || stats.no_show_rate === undefined ? "—" : (Math.round(stats.no_show_rate * 1000) / 10) + "%";
    el("f-satisfaction").textContent = rating.mean === null || rating.mean === undefined ? "—" : Number(rating.mean).toFixed(1) + " / 5";
    el("f-ratings").textContent = rating.count ? fill(T.ratings, { n: rating.count }) : "";
    el("f-urgent").textContent = urgent ? urgent.used + " / " + urgent.total : "—";
    el("f-counters").textContent = [floor.open, floor.paused, floor.serving].map(number).join(" · ");

    draw("chart-hours", "bar", byHour.map(function (h) { return hourLabel(h.hour); }), [
      { label: T.issued, data: byHour.map(function (h) { return h.issued || 0; }), backgroundColor: COLOURS.issued },
      { label: T.served, data: byHour.map(function (h) { return h.served || 0; }), backgroundColor: COLOURS.served }
    ], { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } });

    var waited = byService.filter(function (s) { return s.mean_wait_minutes !== null && s.mean_wait_minutes !== undefined; });
    draw("chart-waits", "bar", waited.map(function (s) { return serviceName(s.service_code); }), [
      { label: T.meanWait, data: waited.map(function (s) { return s.mean_wait_minutes; }), backgroundColor: COLOURS.mean },
      { label: T.p90Wait, data: waited.map(function (s) { return s.p90_wait_minutes; }), backgroundColor: COLOURS.p90 }
    ], { indexAxis: "y", scales: { x: { beginAtZero: true, reverse: rtl }, y: { position: rtl ? "right" : "left" } } });

    draw("chart-counters", "doughnut", [T.open, T.paused, T.serving], [
      { data: [floor.open || 0, floor.paused || 0, floor.serving || 0], backgroundColor: [COLOURS.open, COLOURS.paused, COLOURS.serving] }
    ]);

    draw("chart-urgent", "doughnut", [T.used, T.left], [
      { data: urgent ? [urgent.used || 0, Math.max(0, (urgent.total || 0) - (urgent.used || 0))] : [0, 0], backgroundColor: [COLOURS.used, COLOURS.left] }
    ]);

    var rows = el("services-table").querySelector("tbody");
    rows.textContent = "";
    var listed = byService.length ? byService : Object.keys((snapshot && snapshot.waiting) || {}).map(function (code) { return { service_code: code, waiting: snapshot.waiting[code] }; });
    listed.forEach(function (s) {
      var tr = document.createElement("tr");
      tr.dataset.service = s.service_code;
      [serviceName(s.service_code), s.issued, s.served, s.waiting, s.mean_wait_minutes, s.p90_wait_minutes].forEach(function (value, i) {
        var td = document.createElement(i ? "td" : "th");
        if (i) { td.className = "n"; td.dir = "ltr"; } else { td.scope = "row"; }
        td.textContent = i ? number(value) : value;
        tr.appendChild(td);
      });
      rows.appendChild(tr);
    });
    el("updated").textContent = fill(T.updated, { time: new Date().toLocaleTimeString(lang === "ar" ? "ar-JO" : "en-GB", { timeZone: state.centre && state.centre.timezone || undefined }) });
    body.dataset.refreshes = String(Number(body.dataset.refreshes || 0) + 1);
  }

  function refresh() {
    clearTimeout(timer);
    var centre = encodeURIComponent(state.account.centre_id);
    return Promise.all([
      session.request("GET", "/staff/centres/" + centre + "/stats"),
      session.request("GET", "/staff/centres/" + centre + "/counters").catch(function () { return []; }),
      session.request("GET", "/centres/" + centre + "/queue").catch(function () { return null; })
    ]).then(function (results) {
      if (results[2] && results[2].services) {
        results[2].services.forEach(function (s) { state.names[s.code] = lang === "ar" ? s.name_ar : s.name_en; });
      }
      say("");
      render(results[0], counterList(results[1]), results[2]);
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
