/* A ticket's public page: polls the ticket's public JSON every few seconds and shows its place in the queue
   and estimated wait, then the counter to go to once called. No sign-in, no build step. */
(function () {
  "use strict";
  var body = document.body;
  var lang = body.dataset.lang === "en" ? "en" : "ar";
  var T = JSON.parse(body.dataset.texts || "{}");
  var source = body.dataset.source;
  var every = Number(body.dataset.pollMs) || 5000;
  var names = null;  // service names of the ticket's centre, when the ticket's answer carries only codes
  var timer = null;
  var lastStatus = null;

  function el(id) { return document.getElementById(id); }

  function fill(template, values) {
    return String(template || "").replace(/\{(\w+)\}/g, function (_, key) { return values[key] === undefined ? "" : String(values[key]); });
  }

  function pick(object, keys) {
    for (var i = 0; i < keys.length; i++) {
      var value = keys[i].split(".").reduce(function (o, k) { return o === null || o === undefined ? undefined : o[k]; }, object);
      if (value !== undefined && value !== null && value !== "") { return value; }
    }
    return undefined;
  }

  function localTime(iso, zone) {
    try {
      return new Date(iso).toLocaleTimeString(lang === "ar" ? "ar-JO" : "en-GB", { hour: "2-digit", minute: "2-digit", timeZone: zone || undefined });
    } catch (error) { return iso; }
  }

  function serviceLabel(entry) {
    if (entry && typeof entry === "object") {
      return entry["name_" + lang] || entry.name || (names && names[entry.code]) || entry.code || "";
    }
    return (names && names[entry]) || entry;
  }

  function servicesOf(ticket) {
    var list = Array.isArray(ticket.services) && ticket.services.length ? ticket.services : [ticket.service];
    return list.filter(Boolean);
  }

  function needNames(ticket) {
    var centreId = pick(ticket, ["centre_id", "centre.id"]);
    var bare = servicesOf(ticket).some(function (s) { return typeof s === "string"; });
    if (names || !bare || !centreId) { return Promise.resolve(); }
    return fetch("/api/v1/centres/" + encodeURIComponent(centreId) + "/queue", { headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : {}; })
      .then(function (snapshot) {
        names = {};
        (snapshot.services || []).forEach(function (s) { names[s.code] = s["name_" + lang]; });
      }).catch(function () { names = {}; });
  }

  function render(ticket) {
    var other = lang === "ar" ? "en" : "ar";
    var centreName = pick(ticket, ["centre_name_" + lang, "centre.name_" + lang, "name_" + lang]);
    if (centreName) { el("centre-name").textContent = centreName; document.title = ticket.number + " · " + centreName; }
    var otherName = pick(ticket, ["centre_name_" + other, "centre.name_" + other, "name_" + other]);
    el("centre-other").textContent = otherName || "";
    el("number").textContent = ticket.number || "";
    el("services").textContent = servicesOf(ticket).map(serviceLabel).join(" + ");
    var zone = pick(ticket, ["timezone", "centre.timezone"]);
    el("issued").textContent = ticket.issued_at ? localTime(ticket.issued_at, zone) : "";

    var status = ticket.status;
    var counter = ticket.counter || null;
    var counterNumber = counter && typeof counter === "object" ? counter.number : counter;
    var atCounter = (status === "called" || status === "serving") && counterNumber !== undefined && counterNumber !== null;
    el("waiting-view").hidden = status !== "waiting";
    el("called-view").hidden = !atCounter;
    el("called-view").classList.toggle("serving", status === "serving");
    var ended = ["done", "no_show", "expired", "cancelled"].indexOf(status) >= 0;
    el("ended").hidden = !ended;
    if (ended) { el("ended").textContent = T[status] || status; }
    if (status === "waiting") {
      var position = ticket.position;
      el("position").textContent = position === 1 ? T.next : (position ? fill(T.position, { n: position }) : T.waiting);
      var minutes = pick(ticket, ["estimated_wait_minutes", "estimated_wait"]);
      el("wait").textContent = minutes === undefined ? "" : fill(T.wait, { m: minutes });
    }
    if (atCounter) {
      el("called-text").textContent = status === "serving" ? T.serving : T.called;
      el("counter").textContent = fill(T.counter, { n: counterNumber });
      el("counter-name").textContent = typeof counter === "object" ? (counter["name_" + lang] || "") : "";
      if (lastStatus === "waiting" && status === "called" && navigator.vibrate) { navigator.vibrate([300, 150, 300]); }
    }
    lastStatus = status;
    body.dataset.status = status || "";
    body.dataset.polls = String(Number(body.dataset.polls || 0) + 1);
    el("status-line").textContent = fill(T.updated, { time: localTime(new Date().toISOString()) });
    return ended;
  }

  function poll() {
    clearTimeout(timer);
    fetch(source, { headers: { "Accept": "application/json", "Accept-Language": lang }, cache: "no-store" })
      .then(function (response) {
        if (response.status === 404) { throw Object.assign(new Error(T.notFound), { final: true }); }
        if (!response.ok) { throw new Error(T.offline); }
        return response.json();
      })
      .then(function (ticket) { return needNames(ticket).then(function () { return render(ticket); }); })
      .then(function (ended) { if (!ended) { timer = setTimeout(poll, every); } })
      .catch(function (error) {
        if (error.final) {
          el("number").textContent = "—";
          el("ended").hidden = false;
          el("ended").textContent = error.message;
          body.dataset.status = "not_found";
          return;
        }
        el("status-line").textContent = T.offline;
        timer = setTimeout(poll, every * 2);
      });
  }

  // A phone woken from sleep asks at once rather than at the next tick.
  document.addEventListener("visibilitychange", function () { if (!document.hidden && lastStatus !== "done") { poll(); } });
  poll();
})();
