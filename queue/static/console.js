/* Staff console: signs in through the API (in the account's language), opens a counter (a supervisor can
   take over a held one), follows the centre's live stream, and calls, recalls, starts, completes, marks
   no-show (after a confirm), transfers and pauses, by button or keyboard shortcut. No build step. */
(function () {
  "use strict";
  var lang = document.body.dataset.lang === "en" ? "en" : "ar";
  // The texts come from the server's catalogs (queue/pages.py), in the page's language.
  var T = JSON.parse(document.body.dataset.texts || "{}");
  T.sources = T.sources || {};
  T.reasons = T.reasons || {};
  var session = new window.StaffSession(lang);
  var state = { account: null, centre: null, services: [], counterId: session.extra.counterId || null, desk: null, timezone: null };
  var source = null;
  var clockTimer = null;

  function el(id) { return document.getElementById(id); }

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_, key) { return values[key] === undefined ? "" : String(values[key]); });
  }

  function say(text, ok) {
    var message = el("message");
    message.textContent = text || "";
    message.className = ok ? "ok" : "";
  }

  function show(section) {
    el("login").hidden = section !== "login";
    el("open").hidden = section !== "open";
    el("desk").hidden = section !== "desk";
    el("logout").hidden = section === "login";
  }

  function keepCounter(counterId) {
    state.counterId = counterId;
    session.extra.counterId = counterId;
    session.save();
  }

  function signOut() {
    if (source) { source.close(); source = null; }
    session.logout();
    state = { account: null, centre: null, services: [], counterId: null, desk: null, timezone: null };
    el("who").textContent = "";
    show("login");
  }

  function localTime(iso) {
    try {
      return new Date(iso).toLocaleTimeString(lang === "ar" ? "ar-JO" : "en-GB", { hour: "2-digit", minute: "2-digit", timeZone: state.timezone || undefined });
    } catch (error) { return iso; }
  }

  function clock(seconds) {
    var m = Math.floor(seconds / 60);
    var s = seconds % 60;
    return m + ":" + (s < 10 ? "0" : "") + s;
  }

  function serviceName(code) {
    var service = state.services.filter(function (s) { return s.code === code; })[0];
    return service ? (lang === "ar" ? service.name_ar : service.name_en) : code;
  }

  function marks(ticket) {
    var box = document.createElement("span");
    var add = function (kind, text) {
      var mark = document.createElement("span");
      mark.className = "mark " + kind;
      mark.textContent = text;
      box.appendChild(mark);
    };
    add(ticket.source, T.sources[ticket.source] || ticket.source);
    if (ticket.vulnerable) { add("vulnerable", T.vulnerable); }
    return box;
  }

  function loadStaff() {
    return session.me().then(function (account) {
      if (["staff", "supervisor"].indexOf(account.role) < 0 || !account.centre_id) {
        throw new Error(T.staffOnly);
      }
      if (session.followAccountLanguage(account)) { return new Promise(function () {}); }
      state.account = account;
      el("who").textContent = account.full_name + " · " + account.centre_id;
      return Promise.all([
        session.request("GET", "/centres/" + encodeURIComponent(account.centre_id)),
        session.request("GET", "/centres/" + encodeURIComponent(account.centre_id) + "/queue")
      ]);
    }).then(function (results) {
      state.centre = results[0];
      state.timezone = results[0].timezone;
      state.services = results[1].services;
      fillOpenForm();
      if (state.counterId) { return showDesk(); }
      show("open");
    });
  }

  function fillOpenForm() {
    var select = el("counter");
    select.textContent = "";
    state.centre.counters.forEach(function (counter) {
      var option = document.createElement("option");
      option.value = counter.id;
      option.textContent = (lang === "ar" ? counter.name_ar : counter.name_en) + " (" + counter.number + ")";
      select.appendChild(option);
    });
    var box = el("services");
    Array.prototype.slice.call(box.querySelectorAll("label")).forEach(function (l) { l.remove(); });
    state.services.forEach(function (service) {
      var label = document.createElement("label");
      var input = document.createElement("input");
      input.type = "checkbox";
      input.name = "service";
      input.value = service.code;
      label.appendChild(input);
      label.appendChild(document.createTextNode(" " + serviceName(service.code) + " (" + service.prefix + ")"));
      box.appendChild(label);
    });
  }

  function fillTransfer(current) {
    var transfer = el("transfer-service");
    transfer.textContent = "";
    var own = current ? current.service : null;
    state.services.forEach(function (service) {
      if (service.code === own) { return; } // a ticket is never transferred to the queue it is in
      var option = document.createElement("option");
      option.value = service.code;
      option.textContent = serviceName(service.code);
      transfer.appendChild(option);
    });
  }

  function showDesk() {
    show("desk");
    listen();
    return refreshDesk();
  }

  // `desk` is GET /staff/counters/{id} (CounterStateSchema in queue/schemas.py); its `current` a TicketSchema.
  function renderCurrent(desk) {
    var current = desk.current;
    var paused = desk.paused;
    var status = current ? current.status : null;
    el("current-number").textContent = current ? current.number : "—";
    if (paused) {
      el("current-status").textContent = fill(T.paused, { reason: T.reasons[desk.pause_reason] || desk.pause_reason });
    } else if (current) {
      el("current-status").textContent = T[current.status] || current.status;
    } else {
      el("current-status").textContent = desk.waiting_total > 0 ? fill(T.ready, { n: desk.waiting_total }) : T.none;
    }
    el("current-details").hidden = !current;
    if (current) {
      el("d-services").textContent = serviceName(current.service);
      el("d-marks").textContent = "";
      el("d-marks").appendChild(marks(current));
      var waitedUntil = current.called_at ? new Date(current.called_at).getTime() : Date.now();
      el("d-waited").textContent = fill(T.minutes, { m: Math.max(0, Math.floor((waitedUntil - new Date(current.issued_at).getTime()) / 60000)) });
      el("d-booking").textContent = current.booking_id === null ? "—" : "#" + current.booking_id;
    }
    el("call-next").disabled = status === "called" || status === "serving" || paused;
    el("recall").disabled = status !== "called";
    el("start").disabled = status !== "called";
    el("no-show").disabled = status !== "called";
    el("complete").disabled = !status;
    el("transfer").disabled = !status;
    el("paused-badge").hidden = !paused;
    el("pause").hidden = paused;
    el("resume").hidden = !paused;
    document.body.dataset.paused = paused ? "1" : "0";
    fillTransfer(current);
    tickTimer();
  }

  function tickTimer() {
    var current = state.desk && state.desk.current;
    var since = current && (current.started_at || current.called_at);
    el("d-timer").textContent = since ? clock(Math.max(0, Math.floor((Date.now() - new Date(since).getTime()) / 1000))) : "—";
  }

  function renderWaiting(desk) {
    el("waiting-total").textContent = String(desk.waiting_total);
    var list = el("waiting");
    list.textContent = "";
    desk.waiting.forEach(function (ticket) {
      var li = document.createElement("li");
      li.dataset.ticket = ticket.ticket_id;
      var number = document.createElement("span");
      number.className = "num";
      number.textContent = ticket.number;
      li.appendChild(number);
      li.appendChild(marks(ticket));
      var name = document.createElement("span");
      name.className = "service";
      name.textContent = serviceName(ticket.service);
      li.appendChild(name);
      list.appendChild(li);
    });
  }

  // `floor` is GET /staff/centres/{id}/counters (FloorSchema); `calls` the queue snapshot's recent calls.
  function renderFloor(floor, calls) {
    var list = el("counters");
    list.textContent = "";
    floor.counters.forEach(function (entry) {
      if (String(entry.id) === String(state.counterId)) { return; }
      var li = document.createElement("li");
      li.dataset.counter = entry.id;
      li.dataset.state = entry.state;
      li.className = entry.state;
      var text = (lang === "ar" ? entry.name_ar : entry.name_en) + ": ";
      if (entry.state === "closed") { text += T.free; }
      else if (entry.state === "paused") { text += T.pausedShort + " (" + (T.reasons[entry.pause_reason] || entry.pause_reason) + ")"; }
      else if (entry.current) {
        text += entry.current.number + " · " + serviceName(entry.current.service) + " · " + (T[entry.current.status] || entry.current.status);
      } else { text += T.open; }
      if (entry.since) { text += " · " + localTime(entry.since); }
      li.textContent = text;
      if (entry.clerk_name) {
        var who = document.createElement("bdi");
        who.className = "clerk";
        who.textContent = entry.clerk_name;
        li.appendChild(document.createTextNode(" — "));
        li.appendChild(who);
      }
      list.appendChild(li);
    });
    var recent = el("calls");
    recent.textContent = "";
    calls.slice(0, 6).forEach(function (call) {
      var li = document.createElement("li");
      var number = document.createElement("span");
      number.className = "num";
      number.dir = "ltr";
      number.textContent = call.number;
      li.appendChild(number);
      li.appendChild(document.createTextNode(" → " + (call.counter ? call.counter.number : "—") + (call.called_at ? " · " + localTime(call.called_at) : "")));
      recent.appendChild(li);
    });
  }

  function refreshDesk() {
    if (!state.counterId) { return Promise.resolve(); }
    var centre = encodeURIComponent(state.account.centre_id);
    return Promise.all([
      session.request("GET", "/staff/counters/" + state.counterId),
      session.request("GET", "/staff/centres/" + centre + "/counters"),
      session.request("GET", "/centres/" + centre + "/queue")
    ]).then(function (results) {
      var desk = results[0];
      if (!desk.open) { keepCounter(null); show("open"); return; }
      state.desk = desk;
      el("counter-name").textContent = lang === "ar" ? desk.counter.name_ar : desk.counter.name_en;
      renderCurrent(desk);
      renderWaiting(desk);
      renderFloor(results[1], results[2].recent_calls);
      document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
    });
  }

  function listen() {
    if (source || !state.account) { return; }
    var timer = null;
    source = new EventSource("/api/v1/centres/" + encodeURIComponent(state.account.centre_id) + "/queue/stream");
    var update = function () {
      clearTimeout(timer);
      timer = setTimeout(function () { refreshDesk().catch(function (error) { say(error.message); }); }, 150);
    };
    ["snapshot", "queue.updated", "ticket.called", "ticket.recalled", "ticket.requeued", "counter.updated"].forEach(function (name) {
      source.addEventListener(name, update);
    });
  }

  function act(path, payload) {
    say("");
    return session.request("POST", path, payload).then(function (result) {
      return refreshDesk().then(function () { return result; });
    }).catch(function (error) { say(error.message); return undefined; });
  }

  function onCurrent(action) {
    var current = state.desk && state.desk.current;
    if (current) { return act("/staff/tickets/" + current.ticket_id + "/" + action); }
    return Promise.resolve();
  }

  function openCounter(force) {
    var chosen = Array.prototype.slice.call(el("services").querySelectorAll("input:checked")).map(function (i) { return i.value; });
    if (!chosen.length) { say(T.chooseServices); return; }
    var counterId = el("counter").value;
    var payload = { services: chosen };
    if (force) { payload.force = true; }
    el("taken").hidden = true;
    session.request("POST", "/staff/counters/" + counterId + "/open", payload).then(function () {
      keepCounter(counterId);
      say(T.opened, true);
      return showDesk();
    }).catch(function (error) {
      if (error.code === "counter_taken") {
        // details: {held_by (the clerk's name), held_by_account_id, since}
        var details = error.details;
        el("taken-text").textContent = fill(T.taken, { who: details.held_by, since: localTime(details.since) });
        el("taken").hidden = false;
        el("force").hidden = state.account.role !== "supervisor";
      }
      say(error.message);
    });
  }

  function confirmNoShow(open) {
    el("confirm-no-show").hidden = !open;
    if (open) { el("no-show-yes").focus(); }
  }

  el("login").addEventListener("submit", function (event) {
    event.preventDefault();
    say("");
    session.login(el("national_id").value.trim(), el("password").value)
      .then(function () { el("password").value = ""; return loadStaff(); })
      .catch(function (error) { say(error.message); });
  });
  el("open").addEventListener("submit", function (event) { event.preventDefault(); openCounter(false); });
  el("force").addEventListener("click", function () { openCounter(true); });
  el("call-next").addEventListener("click", function () {
    act("/staff/counters/" + state.counterId + "/call-next").then(function (ticket) {
      if (ticket === null) { say(T.none, true); }
    });
  });
  el("recall").addEventListener("click", function () { onCurrent("recall"); });
  el("start").addEventListener("click", function () { onCurrent("start"); });
  el("complete").addEventListener("click", function () { onCurrent("complete"); });
  el("no-show").addEventListener("click", function () { confirmNoShow(true); });
  el("no-show-yes").addEventListener("click", function () { confirmNoShow(false); onCurrent("no-show"); });
  el("no-show-cancel").addEventListener("click", function () { confirmNoShow(false); });
  el("transfer").addEventListener("click", function () {
    var current = state.desk && state.desk.current;
    var service = el("transfer-service").value;
    if (current && service) {
      act("/staff/tickets/" + current.ticket_id + "/transfer", { service: service }).then(function (ticket) {
        if (ticket) { say(fill(T.transferred, { service: serviceName(service) }), true); }
      });
    }
  });
  el("pause").addEventListener("click", function () {
    act("/staff/counters/" + state.counterId + "/pause", { reason: el("pause-reason").value });
  });
  el("resume").addEventListener("click", function () { act("/staff/counters/" + state.counterId + "/resume"); });
  el("close-counter").addEventListener("click", function () {
    session.request("POST", "/staff/counters/" + state.counterId + "/close").then(function () {
      keepCounter(null);
      say(T.closed, true);
      show("open");
    }).catch(function (error) { say(error.message); });
  });
  el("logout").addEventListener("click", signOut);

  // Shortcuts by physical key (event.code), so they work on an Arabic keyboard layout too.
  document.addEventListener("keydown", function (event) {
    if (el("desk").hidden || event.ctrlKey || event.metaKey || event.altKey) { return; }
    var tag = (event.target && event.target.tagName) || "";
    if (!el("confirm-no-show").hidden) {
      if (event.key === "Escape") { event.preventDefault(); confirmNoShow(false); }
      return; // Enter presses the focused confirm button by itself
    }
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") { return; }
    var buttons = Array.prototype.slice.call(document.querySelectorAll("#desk button[data-key]"));
    var button = buttons.filter(function (b) { return b.dataset.key === event.code && !b.hidden && !b.disabled; })[0];
    if (button) { event.preventDefault(); button.click(); }
  });

  clockTimer = setInterval(tickTimer, 1000);
  if (session.signedIn()) {
    loadStaff().catch(function () { signOut(); });
  } else {
    show("login");
  }
})();
