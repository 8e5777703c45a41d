/* Hall screen: renders the queue from the server-sent-events stream and re-renders on every snapshot
   (sent on each (re)connect), so a network drop heals itself. Every service's count is on screen: the
   tiles scale to fit, and past what fits at a readable size they page. Wait estimates and the centre's
   open state are read again from the snapshot endpoint every half minute. No dependencies, no build. */
(function () {
  "use strict";
  var body = document.body;
  var lang = body.dataset.lang === "en" ? "en" : "ar";
  var speak = body.dataset.speak === "1";
  var streamUrl = body.dataset.stream;
  var snapshotUrl = body.dataset.snapshot;
  var timezone = body.dataset.timezone;
  var MAX_CALLS = 8;
  var PAGE_SECONDS = 10;
  var REFRESH_SECONDS = 30;
  var calls = [];
  var services = [];
  var counts = {};
  var pageIndex = 0;
  var source = null;
  var reconnectTimer = null;
  var audio = null;

  function el(id) { return document.getElementById(id); }

  function bdi(text, language) {
    var node = document.createElement("bdi");
    node.lang = language;
    node.dir = language === "ar" ? "rtl" : "ltr";
    node.textContent = text;
    return node;
  }

  function counterLabel(counter) {
    return counter ? String(counter.number) : "—";
  }

  function renderCalls(highlight) {
    var latest = calls[0];
    el("latest-number").textContent = latest ? latest.number : "—";
    el("latest-counter").textContent = latest ? counterLabel(latest.counter) : "—";
    var list = el("calls");
    list.textContent = "";
    calls.slice(0, MAX_CALLS).forEach(function (call, index) {
      var li = document.createElement("li");
      if (highlight && index === 0) { li.className = "new"; }
      var number = document.createElement("span");
      number.className = "number";
      number.dir = "ltr";
      number.textContent = call.number;
      var arrow = document.createElement("span");
      arrow.className = "arrow";
      arrow.setAttribute("aria-hidden", "true");
      arrow.textContent = lang === "ar" ? "←" : "→";
      var counter = document.createElement("span");
      counter.className = "counter";
      counter.dir = "ltr";
      counter.textContent = counterLabel(call.counter);
      li.appendChild(number);
      li.appendChild(arrow);
      li.appendChild(counter);
      list.appendChild(li);
    });
    body.dataset.calls = String(calls.length);
  }

  // How many tiles one page holds at this screen size: each keeps at least ~13% of the panel's height
  // and ~240 px of width, so names and counts stay readable from across the hall.
  function layout(n) {
    var panel = el("services");
    var width = panel.clientWidth || window.innerWidth;
    var height = panel.clientHeight || window.innerHeight;
    var columns = Math.max(1, Math.min(4, Math.floor(width / 240)));
    var rows = Math.max(1, Math.min(4, Math.floor(height / Math.max(80, height * 0.13))));
    var perPage = columns * rows;
    if (n <= perPage) {
      columns = Math.min(columns, Math.max(1, Math.ceil(Math.sqrt(n * width / height / 2.2))));
      columns = Math.max(columns, Math.ceil(n / rows));
      rows = Math.max(1, Math.ceil(n / columns));
      perPage = n;
    }
    return { columns: columns, rows: rows, perPage: Math.max(1, perPage) };
  }

  function waitText(minutes) {
    if (minutes === null || minutes === undefined) { return "—"; }
    return lang === "ar" ? "~" + minutes + " د" : "~" + minutes + " min";
  }

  function renderWaiting() {
    var list = el("services");
    var total = 0;
    services.forEach(function (service) { total += counts[service.code] || 0; });
    el("total").textContent = String(total);
    var shape = layout(services.length);
    var pages = Math.max(1, Math.ceil(services.length / shape.perPage));
    if (pageIndex >= pages) { pageIndex = 0; }
    list.style.gridTemplateColumns = "repeat(" + shape.columns + ", minmax(0, 1fr))";
    list.style.gridTemplateRows = "repeat(" + shape.rows + ", minmax(0, 1fr))";
    list.textContent = "";
    services.slice(pageIndex * shape.perPage, (pageIndex + 1) * shape.perPage).forEach(function (service) {
      var li = document.createElement("li");
      li.dataset.service = service.code;
      var names = document.createElement("div");
      names.className = "names";
      var primary = bdi(lang === "ar" ? service.name_ar : service.name_en, lang);
      primary.className = "name";
      var other = lang === "ar" ? "en" : "ar";
      var secondary = bdi(lang === "ar" ? service.name_en : service.name_ar, other);
      secondary.className = "name-secondary";
      names.appendChild(primary);
      names.appendChild(secondary);
      var figures = document.createElement("div");
      figures.className = "figures";
      var prefix = document.createElement("span");
      prefix.className = "prefix";
      prefix.textContent = service.prefix || "";
      var count = document.createElement("span");
      count.className = "count";
      count.dir = "ltr";
      count.textContent = String(counts[service.code] || 0);
      var wait = document.createElement("span");
      wait.className = "wait";
      wait.dir = lang === "ar" ? "rtl" : "ltr";
      wait.textContent = waitText(service.estimated_wait_minutes);
      figures.appendChild(prefix);
      figures.appendChild(count);
      figures.appendChild(wait);
      li.appendChild(names);
      li.appendChild(figures);
      list.appendChild(li);
    });
    var page = el("page");
    page.hidden = pages < 2;
    page.textContent = (pageIndex + 1) + " / " + pages;
    body.dataset.pages = String(pages);
  }

  function renderOpenState(snapshot) {
    var closed = snapshot.open === false;
    el("open-view").hidden = closed;
    el("closed-view").hidden = !closed;
    body.dataset.open = closed ? "0" : "1";
    el("opens").hidden = !snapshot.opens_at;
    if (snapshot.opens_at) {
      var when = new Date(snapshot.opens_at);
      var options = { weekday: "long", hour: "2-digit", minute: "2-digit", timeZone: timezone };
      try {
        el("opens-at").textContent = when.toLocaleString(lang === "ar" ? "ar-JO" : "en-GB", options);
      } catch (error) {
        el("opens-at").textContent = when.toLocaleString();
      }
    }
    if (snapshot.open_counters !== undefined) { el("open-counters").textContent = String(snapshot.open_counters); }
  }

  function applySnapshot(snapshot) {
    services = snapshot.services || [];
    counts = snapshot.waiting || {};
    renderOpenState(snapshot);
    renderWaiting();
  }

  function chime() {
    try {
      var Context = window.AudioContext || window.webkitAudioContext;
      if (!Context) { return; }
      audio = audio || new Context();
      if (audio.state === "suspended") { audio.resume(); }
      var start = audio.currentTime + 0.05;
      [880, 660].forEach(function (frequency, i) {
        var oscillator = audio.createOscillator();
        var gain = audio.createGain();
        var t = start + i * 0.35;
        oscillator.type = "sine";
        oscillator.frequency.value = frequency;
        gain.gain.setValueAtTime(0.0001, t);
        gain.gain.exponentialRampToValueAtTime(0.5, t + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.33);
        oscillator.connect(gain);
        gain.connect(audio.destination);
        oscillator.start(t);
        oscillator.stop(t + 0.35);
      });
      body.dataset.chimes = String(Number(body.dataset.chimes || 0) + 1);
      body.dataset.audio = audio.state;
    } catch (error) { /* a screen without audio still shows the call */ }
  }

  function announce(call) {
    if (!speak || !("speechSynthesis" in window) || !call.counter) { return; }
    var spelled = call.number.replace("-", " ");
    var text = lang === "ar"
      ? "الرقم " + spelled + "، إلى الشباك رقم " + call.counter.number
      : "Ticket " + spelled + ", please go to counter " + call.counter.number;
    var utterance = new SpeechSynthesisUtterance(text);
    utterance.lang = lang === "ar" ? "ar-JO" : "en-GB";
    utterance.rate = 0.9;
    window.speechSynthesis.speak(utterance);
  }

  function onCall(call) {
    calls = calls.filter(function (c) { return c.ticket_id !== call.ticket_id; });
    calls.unshift(call);
    calls = calls.slice(0, MAX_CALLS);
    renderCalls(true);
    var now = el("now");
    now.classList.remove("flash");
    void now.offsetWidth; // restart the animation
    now.classList.add("flash");
    chime();
    announce(call);
  }

  function parse(event) {
    try { return JSON.parse(event.data); } catch (error) { return null; }
  }

  function setOnline(online) {
    var status = el("connection");
    status.className = online ? "online" : "offline";
    status.textContent = "";
    status.appendChild(bdi(online ? "متصل" : "انقطع الاتصال، تجري إعادة المحاولة…", "ar"));
    status.appendChild(document.createTextNode(" · "));
    status.appendChild(bdi(online ? "Live" : "Reconnecting…", "en"));
    body.dataset.online = online ? "1" : "0";
  }

  function connect() {
    if (source) { source.close(); }
    source = new EventSource(streamUrl);
    source.addEventListener("open", function () { setOnline(true); });
    source.addEventListener("snapshot", function (event) {
      var snapshot = parse(event);
      if (!snapshot) { return; }
      calls = (snapshot.recent_calls || []).slice(0, MAX_CALLS);
      renderCalls(false);
      applySnapshot(snapshot);
      setOnline(true);
      body.dataset.snapshots = String(Number(body.dataset.snapshots || 0) + 1);
    });
    source.addEventListener("ticket.called", function (event) {
      var call = parse(event);
      if (call) { onCall(call); }
    });
    source.addEventListener("ticket.recalled", function (event) {
      var call = parse(event);
      if (call) { onCall(call); }
    });
    source.addEventListener("queue.updated", function (event) {
      var update = parse(event);
      if (update && update.waiting) {
        counts = update.waiting;
        renderWaiting();
      }
    });
    source.addEventListener("error", function () {
      setOnline(false);
      // EventSource retries by itself unless the server refused the stream: then start over.
      if (source.readyState === EventSource.CLOSED && !reconnectTimer) {
        reconnectTimer = setTimeout(function () { reconnectTimer = null; connect(); }, 3000);
      }
    });
  }

  // Estimates and the open/closed state move with counters and the clock, not only with events.
  function refresh() {
    fetch(snapshotUrl, { headers: { "Accept": "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (snapshot) {
        if (!snapshot) { return; }
        applySnapshot(snapshot);
        body.dataset.refreshes = String(Number(body.dataset.refreshes || 0) + 1);
      })
      .catch(function () { /* the stream's state stays on screen */ });
  }

  function nextPage() {
    if (Number(body.dataset.pages || 1) > 1) {
      pageIndex += 1;
      renderWaiting();
    }
  }

  function tick() {
    var options = { hour: "2-digit", minute: "2-digit", timeZone: timezone };
    try {
      el("clock").textContent = new Date().toLocaleTimeString(lang === "ar" ? "ar-JO" : "en-GB", options);
    } catch (error) {
      el("clock").textContent = new Date().toLocaleTimeString();
    }
  }

  // A kiosk-mode screen started with Chromium's --autoplay-policy=no-user-gesture-required has a running
  // AudioContext from the start: no button to press. Elsewhere one click unlocks sound.
  function soundReady() {
    try {
      var Context = window.AudioContext || window.webkitAudioContext;
      if (!Context) { return; }
      audio = audio || new Context();
      body.dataset.audio = audio.state;
      if (audio.state === "running") { el("sound").classList.add("on"); }
    } catch (error) { /* no audio on this screen */ }
  }

  el("sound").addEventListener("click", function () {
    chime();
    el("sound").classList.add("on");
  });
  window.addEventListener("resize", renderWaiting);
  soundReady();
  tick();
  setInterval(tick, 10000);
  setInterval(nextPage, PAGE_SECONDS * 1000);
  setInterval(refresh, REFRESH_SECONDS * 1000);
  connect();
})();
