/* A ticket's public page: polls the ticket's public JSON every few seconds and shows its place in the queue
   and estimated wait, then the counter to go to once called. No sign-in, no build step. */
(function () {
  "use strict";
  var body = document.body;
  var lang = body.dataset.lang === "en" ? "en" : "ar";
  var T = JSON.parse(body.dataset.texts || "{}");
  var source = body.dataset.source;
  var every = Number(body.dataset.pollMs) || 5000;
  var timer = null;
  var lastStatus = null;

  function el(id) { return document.getElementById(id); }

  function fill(template, values) {
    return String(template || "").replace(/\{(\w+)\}/g, function (_, key) { return values[key] === undefined ? "" : String(values[key]); });
  }

  function localTime(iso, zone) {
    try {
      return new Date(iso).toLocaleTimeString(lang === "ar" ? "ar-JO" : "en-GB", { hour: "2-digit", minute: "2-digit", timeZone: zone || undefined });
    } catch (error) { return iso; }
  }

  // The answer is PublicTicketSchema (queue/schemas.py): GET /api/v1/public-tickets/{public_id}.
  function render(ticket) {
    var other = lang === "ar" ? "en" : "ar";
    var centreName = ticket["centre_name_" + lang];
    el("centre-name").textContent = centreName;
    document.title = ticket.number + " · " + centreName;
    el("centre-other").textContent = ticket["centre_name_" + other];
    el("number").textContent = ticket.number;
    el("services").textContent = ticket.services.map(function (s) { return s["name_" + lang]; }).join(" + ");
    el("issued").textContent = localTime(ticket.issued_at, ticket.timezone);

    var status = ticket.status;
    var counter = ticket.counter;  // set once called (and while served)
    var atCounter = (status === "called" || status === "serving") && counter !== null;
    el("waiting-view").hidden = status !== "waiting";
    el("called-view").hidden = !atCounter;
    el("called-view").classList.toggle("serving", status === "serving");
    var ended = ["done", "no_show", "expired", "cancelled"].indexOf(status) >= 0;
    el("ended").hidden = !ended;
    if (ended) { el("ended").textContent = T[status] || status; }
    if (status === "waiting") {
      var position = ticket.position;
      el("position").textContent = position === 1 ? T.next : (position ? fill(T.position, { n: position }) : T.waiting);
      var minutes = ticket.estimated_wait_minutes;
      el("wait").textContent = minutes === null ? "" : fill(T.wait, { m: minutes });
    }
    if (atCounter) {
      el("called-text").textContent = status === "serving" ? T.serving : T.called;
      el("counter").textContent = fill(T.counter, { n: counter.number });
      el("counter-name").textContent = counter["name_" + lang] || "";
      if (lastStatus === "waiting" && status === "called" && navigator.vibrate) { navigator.vibrate([300, 150, 300]); }
    }
    lastStatus = status;
    body.dataset.status = status;
    body.dataset.polls = String(Number(body.dataset.polls || 0) + 1);
    el("status-line").textContent = fill(T.updated, { time: localTime(new Date().toISOString(), ticket.timezone) });
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
      .then(render)
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
