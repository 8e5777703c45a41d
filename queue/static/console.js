/* Staff console: signs in through the API, opens a counter, follows the centre's live stream and
   calls, recalls, starts, completes, marks no-show and transfers. No dependencies, no build step. */
(function () {
  "use strict";
  var API = "/api/v1";
  var lang = document.body.dataset.lang === "en" ? "en" : "ar";
  var T = {
    ar: { waiting: "بالانتظار", called: "تم النداء", serving: "قيد الخدمة", none: "لا يوجد أحد بالانتظار",
          error: "تعذّر تنفيذ الطلب", opened: "تم فتح الشباك", closed: "تم إغلاق الشباك", chooseServices: "اختر خدمة واحدة على الأقل",
          staffOnly: "هذه الشاشة لموظفي المراكز فقط" },
    en: { waiting: "Waiting", called: "Called", serving: "Being served", none: "Nobody is waiting",
          error: "The request failed", opened: "Counter opened", closed: "Counter closed", chooseServices: "Choose at least one service",
          staffOnly: "This console is for centre staff only" }
  }[lang];
  var state = { access: null, refresh: null, account: null, centre: null, services: [], counterId: null, current: null };
  var source = null;

  function el(id) { return document.getElementById(id); }

  function say(text, ok) {
    var message = el("message");
    message.textContent = text || "";
    message.className = ok ? "ok" : "";
  }

  function save() {
    sessionStorage.setItem("sanad-console", JSON.stringify({ access: state.access, refresh: state.refresh, counterId: state.counterId }));
  }

  function restore() {
    try {
      var saved = JSON.parse(sessionStorage.getItem("sanad-console") || "{}");
      state.access = saved.access || null;
      state.refresh = saved.refresh || null;
      state.counterId = saved.counterId || null;
    } catch (error) { /* start afresh */ }
  }

  function request(method, path, body, retried) {
    var headers = { "Accept": "application/json", "Accept-Language": lang };
    if (state.access) { headers["Authorization"] = "Bearer " + state.access; }
    if (body !== undefined) { headers["Content-Type"] = "application/json"; }
    return fetch(API + path, { method: method, headers: headers, body: body === undefined ? undefined : JSON.stringify(body) })
      .then(function (response) {
        if (response.status === 401 && state.refresh && !retried) {
          return refresh().then(function () { return request(method, path, body, true); });
        }
        if (response.status === 204) { return null; }
        return response.json().then(function (data) {
          if (!response.ok) {
            var error = new Error((data && data.error && data.error.message) || T.error);
            error.code = data && data.error && data.error.code;
            error.status = response.status;
            throw error;
          }
          return data;
        });
      });
  }

  function refresh() {
    var token = state.refresh;
    state.access = null;
    return request("POST", "/auth/refresh", { refresh_token: token }, true).then(function (tokens) {
      state.access = tokens.access_token;
      state.refresh = tokens.refresh_token;
      save();
    }, function (error) { signOut(); throw error; });
  }

  function show(section) {
    el("login").hidden = section !== "login";
    el("open").hidden = section !== "open";
    el("desk").hidden = section !== "desk";
    el("logout").hidden = section === "login";
  }

  function signOut() {
    if (source) { source.close(); source = null; }
    state = { access: null, refresh: null, account: null, centre: null, services: [], counterId: null, current: null };
    sessionStorage.removeItem("sanad-console");
    el("who").textContent = "";
    show("login");
  }

  function loadStaff() {
    return request("GET", "/me").then(function (account) {
      if (["staff", "supervisor"].indexOf(account.role) < 0 || !account.centre_id) {
        throw new Error(T.staffOnly);
      }
      state.account = account;
      el("who").textContent = account.full_name + " · " + account.centre_id;
      return Promise.all([
        request("GET", "/centres/" + encodeURIComponent(account.centre_id)),
        request("GET", "/centres/" + encodeURIComponent(account.centre_id) + "/queue")
      ]);
    }).then(function (results) {
      state.centre = results[0];
      state.services = results[1].services || [];
      fillOpenForm();
      if (state.counterId) { return showDesk(); }
      show("open");
    });
  }

  function serviceName(code) {
    var service = state.services.filter(function (s) { return s.code === code; })[0];
    return service ? (lang === "ar" ? service.name_ar : service.name_en) : code;
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
    var transfer = el("transfer-service");
    transfer.textContent = "";
    state.services.forEach(function (service) {
      var label = document.createElement("label");
      var input = document.createElement("input");
      input.type = "checkbox";
      input.name = "service";
      input.value = service.code;
      label.appendChild(input);
      label.appendChild(document.createTextNode(" " + serviceName(service.code) + " (" + service.prefix + ")"));
      box.appendChild(label);
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

  function refreshDesk() {
    if (!state.counterId) { return Promise.resolve(); }
    return request("GET", "/staff/counters/" + state.counterId).then(function (desk) {
      if (!desk.open) { state.counterId = null; save(); show("open"); return; }
      el("counter-name").textContent = lang === "ar" ? desk.counter.name_ar : desk.counter.name_en;
      state.current = desk.current;
      el("current-number").textContent = desk.current ? desk.current.number : "—";
      el("current-status").textContent = desk.current ? (T[desk.current.status] || desk.current.status) : T.none;
      var status = desk.current ? desk.current.status : null;
      el("call-next").disabled = status === "called";
      el("recall").disabled = status !== "called";
      el("start").disabled = status !== "called";
      el("no-show").disabled = status !== "called";
      el("complete").disabled = !status;
      el("transfer").disabled = !status;
      el("waiting-total").textContent = String(desk.waiting_total);
      var list = el("waiting");
      list.textContent = "";
      desk.waiting.forEach(function (ticket) {
        var li = document.createElement("li");
        li.dataset.ticket = ticket.ticket_id;
        li.textContent = ticket.number;
        var small = document.createElement("span");
        small.className = "source";
        small.textContent = ticket.source;
        li.appendChild(small);
        list.appendChild(li);
      });
    });
  }

  function listen() {
    if (source || !state.account) { return; }
    var timer = null;
    source = new EventSource(API + "/centres/" + encodeURIComponent(state.account.centre_id) + "/queue/stream");
    var update = function () {
      clearTimeout(timer);
      timer = setTimeout(function () { refreshDesk().catch(function (error) { say(error.message); }); }, 150);
    };
    ["snapshot", "queue.updated", "ticket.called", "ticket.recalled"].forEach(function (name) {
      source.addEventListener(name, update);
    });
  }

  function act(path, body) {
    say("");
    return request("POST", path, body).then(function (result) {
      return refreshDesk().then(function () { return result; });
    }).catch(function (error) { say(error.message); });
  }

  el("login").addEventListener("submit", function (event) {
    event.preventDefault();
    say("");
    request("POST", "/auth/login", { national_id: el("national_id").value.trim(), password: el("password").value })
      .then(function (tokens) {
        state.access = tokens.access_token;
        state.refresh = tokens.refresh_token;
        save();
        el("password").value = "";
        return loadStaff();
      })
      .catch(function (error) { say(error.message); });
  });

  el("open").addEventListener("submit", function (event) {
    event.preventDefault();
    var chosen = Array.prototype.slice.call(el("services").querySelectorAll("input:checked")).map(function (i) { return i.value; });
    if (!chosen.length) { say(T.chooseServices); return; }
    var counterId = el("counter").value;
    request("POST", "/staff/counters/" + counterId + "/open", { services: chosen }).then(function () {
      state.counterId = counterId;
      save();
      say(T.opened, true);
      return showDesk();
    }).catch(function (error) { say(error.message); });
  });

  el("call-next").addEventListener("click", function () {
    act("/staff/counters/" + state.counterId + "/call-next").then(function (ticket) {
      if (ticket === null) { say(T.none, true); }
    });
  });
  el("recall").addEventListener("click", function () { if (state.current) { act("/staff/tickets/" + state.current.ticket_id + "/recall"); } });
  el("start").addEventListener("click", function () { if (state.current) { act("/staff/tickets/" + state.current.ticket_id + "/start"); } });
  el("complete").addEventListener("click", function () { if (state.current) { act("/staff/tickets/" + state.current.ticket_id + "/complete"); } });
  el("no-show").addEventListener("click", function () { if (state.current) { act("/staff/tickets/" + state.current.ticket_id + "/no-show"); } });
  el("transfer").addEventListener("click", function () {
    if (state.current) { act("/staff/tickets/" + state.current.ticket_id + "/transfer", { service: el("transfer-service").value }); }
  });
  el("close-counter").addEventListener("click", function () {
    request("POST", "/staff/counters/" + state.counterId + "/close").then(function () {
      state.counterId = null;
      save();
      say(T.closed, true);
      show("open");
    }).catch(function (error) { say(error.message); });
  });
  el("logout").addEventListener("click", function () {
    if (state.refresh) { request("POST", "/auth/logout", { refresh_token: state.refresh }).catch(function () {}); }
    signOut();
  });

  restore();
  if (state.access || state.refresh) {
    loadStaff().catch(function () { signOut(); });
  } else {
    show("login");
  }
})();
