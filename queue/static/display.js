/* Hall screen: renders the queue from the server-sent-events stream and re-renders on every snapshot
   (sent on each (re)connect), so a network drop heals itself. No dependencies, no build step. */
(function () {
  "use strict";
  var body = document.body;
  var lang = body.dataset.lang === "en" ? "en" : "ar";
  var speak = body.dataset.speak === "1";
  var streamUrl = body.dataset.stream;
  var timezone = body.dataset.timezone;
  var MAX_CALLS = 8;
  var calls = [];
  var services = [];
  var source = null;
  var reconnectTimer = null;
  var audio = null;

  function el(id) { return document.getElementById(id); }

  function counterLabel(counter) {
    if (!counter) { return "—"; }
    return String(counter.number);
  }

  function serviceName(service) {
    return lang === "ar" ? service.name_ar : service.name_en;
  }

  function renderCalls(highlight) {
    var latest = calls[0];
    el("latest-number").textContent = latest ? latest.number : "—";
    el("latest-counter").textContent = latest ? counterLabel(latest.counter) : "—";
    var rows = el("calls");
    rows.textContent = "";
    calls.slice(0, MAX_CALLS).forEach(function (call, index) {
      var tr = document.createElement("tr");
      if (highlight && index === 0) { tr.className = "new"; }
      var number = document.createElement("td");
      number.className = "number";
      number.textContent = call.number;
      var counter = document.createElement("td");
      counter.className = "counter";
      counter.textContent = counterLabel(call.counter);
      tr.appendChild(number);
      tr.appendChild(counter);
      rows.appendChild(tr);
    });
    body.dataset.calls = String(calls.length);
  }

  function renderWaiting(counts) {
    var list = el("services");
    list.textContent = "";
    services.forEach(function (service) {
      var li = document.createElement("li");
      li.dataset.service = service.code;
      var name = document.createElement("span");
      name.className = "name";
      name.textContent = serviceName(service);
      var secondary = document.createElement("span");
      secondary.className = "name-secondary";
      secondary.textContent = lang === "ar" ? service.name_en : service.name_ar;
      name.appendChild(secondary);
      var count = document.createElement("span");
      count.className = "count";
      count.textContent = String((counts && counts[service.code]) || 0);
      li.appendChild(name);
      li.appendChild(count);
      list.appendChild(li);
    });
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
    status.innerHTML = online
      ? '<span lang="ar">متصل</span> · <span lang="en">Live</span>'
      : '<span lang="ar">انقطع الاتصال، تجري إعادة المحاولة…</span> · <span lang="en">Reconnecting…</span>';
    body.dataset.online = online ? "1" : "0";
  }

  function connect() {
    if (source) { source.close(); }
    source = new EventSource(streamUrl);
    source.addEventListener("open", function () { setOnline(true); });
    source.addEventListener("snapshot", function (event) {
      var snapshot = parse(event);
      if (!snapshot) { return; }
      services = snapshot.services || [];
      calls = (snapshot.recent_calls || []).slice(0, MAX_CALLS);
      renderCalls(false);
      renderWaiting(snapshot.waiting || {});
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
      if (update) { renderWaiting(update.waiting || {}); }
    });
    source.addEventListener("error", function () {
      setOnline(false);
      // EventSource retries by itself unless the server refused the stream: then start over.
      if (source.readyState === EventSource.CLOSED && !reconnectTimer) {
        reconnectTimer = setTimeout(function () { reconnectTimer = null; connect(); }, 3000);
      }
    });
  }

  function tick() {
    var options = { hour: "2-digit", minute: "2-digit", timeZone: timezone };
    try {
      el("clock").textContent = new Date().toLocaleTimeString(lang === "ar" ? "ar-JO" : "en-GB", options);
    } catch (error) {
      el("clock").textContent = new Date().toLocaleTimeString();
    }
  }

  el("sound").addEventListener("click", function () {
    chime();
    el("sound").classList.add("on");
  });
  tick();
  setInterval(tick, 10000);
  connect();
})();
