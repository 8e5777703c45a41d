/* Kiosk: a touch for a service (with a priority choice) or a booking reference (typed, or read from the
   booking's QR code where the browser has BarcodeDetector) gives a ticket, printed 80 mm wide with a QR code
   of its public page. The kiosk token comes once in ?token= and stays on the device. No build step. */
(function () {
  "use strict";
  var body = document.body;
  var lang = body.dataset.lang === "en" ? "en" : "ar";
  var T = JSON.parse(body.dataset.texts || "{}");
  var centre = body.dataset.centre;
  var zone = body.dataset.timezone || undefined;
  var API = "/api/v1";
  var KEY = "sanad-kiosk:" + centre;
  var RESET_AFTER_MS = 30000;
  var SCREEN_SCALE = 1.35;  // kiosk.css enlarges the ticket on screen by as much
  var resetTimer = null;
  var scanning = null;
  var busy = false;

  function el(id) { return document.getElementById(id); }

  function fill(template, values) {
    return String(template || "").replace(/\{(\w+)\}/g, function (_, key) { return values[key] === undefined ? "" : String(values[key]); });
  }

  function kioskToken() {
    var params = new URLSearchParams(window.location.search);
    var given = params.get("token");
    try {
      if (given) {
        localStorage.setItem(KEY, given);
        params.delete("token");  // not left on the screen or in the history
        var rest = params.toString();
        window.history.replaceState(null, "", window.location.pathname + (rest ? "?" + rest : ""));
        return given;
      }
      return localStorage.getItem(KEY);
    } catch (error) { return given; }
  }

  var token = kioskToken();

  function say(text) {
    var message = el("message");
    message.textContent = text || "";
    message.hidden = !text;
  }

  function idempotencyKey() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);  // randomUUID needs a secure context; a kiosk may be on plain http
    return Array.prototype.map.call(bytes, function (b) { return (b < 16 ? "0" : "") + b.toString(16); }).join("");
  }

  function post(path, payload) {
    return fetch(API + path, {
      method: "POST",
      headers: {
        "Accept": "application/json",
        "Accept-Language": lang,
        "Authorization": "Bearer " + token,
        "Content-Type": "application/json",
        "Idempotency-Key": idempotencyKey()
      },
      body: JSON.stringify(payload)
    }).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (data) {
        if (!response.ok) {
          var error = new Error((data && data.error && data.error.message) || T.failed);
          error.code = data && data.error && data.error.code;
          error.details = (data && data.error && data.error.details) || {};
          throw error;
        }
        return data;
      });
    });
  }

  function localTime(iso) {
    try {
      return new Date(iso).toLocaleTimeString(lang === "ar" ? "ar-JO" : "en-GB", { hour: "2-digit", minute: "2-digit", timeZone: zone });
    } catch (error) { return iso; }
  }

  function serviceName(code) {
    var button = document.querySelector(".service[data-service='" + (window.CSS && CSS.escape ? CSS.escape(code) : code) + "']");
    return button ? button.querySelector(".name").textContent : code;
  }

  function showClosed(opensAt) {
    el("choose").hidden = true;
    el("ticket-view").hidden = true;
    el("closed").hidden = false;
    el("closed-opens").textContent = opensAt ? fill(T.opensAt, { time: opensDay(opensAt) }) : "";
    body.dataset.state = "closed";
    if (opensAt) {
      var wait = new Date(opensAt).getTime() - Date.now();
      if (wait > 0 && wait < 2 * 86400000) { setTimeout(function () { window.location.reload(); }, wait + 5000); }
    }
  }

  function opensDay(iso) {
    try {
      return new Date(iso).toLocaleString(lang === "ar" ? "ar-JO" : "en-GB", { weekday: "long", hour: "2-digit", minute: "2-digit", timeZone: zone });
    } catch (error) { return iso; }
  }

  function showChoose() {
    clearTimeout(resetTimer);
    stopScan();
    el("ticket-view").hidden = true;
    el("closed").hidden = true;
    el("choose").hidden = false;
    el("vulnerable").setAttribute("aria-pressed", "false");
    el("reference").value = "";
    body.dataset.state = "choose";
  }

  var measuredPage = null;

  function pageSizeForTicket() {
    // Chromium drops `size: 80mm auto` as invalid, so the ticket's own height is measured and set as the
    // page's (CSSOM on our own stylesheet: the CSP allows it, unlike an inserted <style>).
    var sheet = Array.prototype.filter.call(document.styleSheets, function (s) { return /kiosk\.css/.test(s.href || ""); })[0];
    if (!sheet) { return; }
    var rules = Array.prototype.slice.call(sheet.cssRules);
    if (measuredPage && rules.indexOf(measuredPage) >= 0) { sheet.deleteRule(rules.indexOf(measuredPage)); }
    var heightMm = Math.ceil(el("ticket").scrollHeight * 25.4 / 96) + 6;
    var index = sheet.insertRule("@page { size: 80mm " + heightMm + "mm; margin: 0; }", sheet.cssRules.length);
    measuredPage = sheet.cssRules[index];
    body.dataset.pageHeightMm = String(heightMm);
  }

  function printTicket() {
    var qr = el("t-qr");
    var ready = qr.complete ? Promise.resolve() : new Promise(function (resolve) {
      qr.addEventListener("load", resolve, { once: true });
      qr.addEventListener("error", resolve, { once: true });
    });
    return ready.then(function () {
      el("ticket-frame").style.height = Math.ceil(el("ticket").offsetHeight * SCREEN_SCALE) + "px";
      pageSizeForTicket();
      body.dataset.printed = String(Number(body.dataset.printed || 0) + 1);
      // Silent on a kiosk started with --kiosk-printing (see README); a print dialog elsewhere.
      if (body.dataset.autoprint !== "0") { window.print(); }
    });
  }

  function showTicket(ticket, checkedIn) {
    stopScan();
    el("t-number").textContent = ticket.number;
    el("t-services").textContent = serviceName(ticket.service);
    var position = ticket.position;
    var minutes = ticket.estimated_wait_minutes;
    el("t-position").textContent = position === null ? "—" : String(position);
    el("t-wait").textContent = minutes === null ? "—" : (position === 1 && !minutes ? T.next : fill(T.wait, { m: minutes }));
    el("t-issued").textContent = localTime(ticket.issued_at);
    var marks = [];
    if (checkedIn) { marks.push(T.checkedIn); }
    if (ticket.vulnerable) { marks.push(el("vulnerable").querySelector("span:last-child").textContent); }
    el("t-marks").textContent = marks.join(" · ");
    el("t-marks").hidden = !marks.length;
    // The QR code is the address of the ticket's public page, /t/{public_id}.
    el("t-qr").src = "/t/" + encodeURIComponent(ticket.public_id) + "/qr.svg";
    body.dataset.publicId = ticket.public_id;
    el("choose").hidden = true;
    el("ticket-view").hidden = false;
    body.dataset.state = "ticket";
    body.dataset.ticket = ticket.number;
    clearTimeout(resetTimer);
    resetTimer = setTimeout(showChoose, RESET_AFTER_MS);
    return printTicket();
  }

  function failed(error) {
    if (error && error.code === "centre_closed") { showClosed(error.details && error.details.opens_at); }
    say(error && error.message ? error.message : T.failed);
  }

  function once(action) {
    if (busy) { return; }
    if (!token) { say(T.noToken); return; }
    busy = true;
    say("");
    action().catch(failed).then(function () { busy = false; });
  }

  Array.prototype.forEach.call(document.querySelectorAll(".service"), function (button) {
    button.addEventListener("click", function () {
      var vulnerable = el("vulnerable").getAttribute("aria-pressed") === "true";
      once(function () {
        return post("/centres/" + encodeURIComponent(centre) + "/tickets", { service: button.dataset.service, vulnerable: vulnerable })
          .then(function (ticket) { return showTicket(ticket, false); });
      });
    });
  });

  el("vulnerable").addEventListener("click", function () {
    var on = el("vulnerable").getAttribute("aria-pressed") !== "true";
    el("vulnerable").setAttribute("aria-pressed", on ? "true" : "false");
  });

  function checkIn(reference) {
    once(function () {
      return post("/centres/" + encodeURIComponent(centre) + "/check-in", { reference: reference.trim().toUpperCase() })
        .then(function (ticket) { return showTicket(ticket, true); });
    });
  }

  el("check-in").addEventListener("submit", function (event) {
    event.preventDefault();
    if (el("reference").value.trim()) { checkIn(el("reference").value); }
  });

  function stopScan() {
    if (!scanning) { return; }
    clearInterval(scanning.timer);
    scanning.stream.getTracks().forEach(function (track) { track.stop(); });
    el("camera").hidden = true;
    scanning = null;
  }

  if ("BarcodeDetector" in window && navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
    el("scan").hidden = false;
    el("scan").addEventListener("click", function () {
      if (scanning) { stopScan(); return; }
      var detector = new window.BarcodeDetector({ formats: ["qr_code"] });
      navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } }).then(function (stream) {
        var video = el("camera");
        video.srcObject = stream;
        video.hidden = false;
        video.play();
        say(T.scanning);
        scanning = { stream: stream, timer: setInterval(function () {
          detector.detect(video).then(function (codes) {
            if (codes.length && scanning) {
              var value = codes[0].rawValue;
              stopScan();
              el("reference").value = value;
              checkIn(value);
            }
          }).catch(function () {});
        }, 300) };
      }).catch(function () { say(T.noCamera); });
    });
  }

  el("done").addEventListener("click", showChoose);
  el("print-again").addEventListener("click", function () { printTicket(); });

  if (!token) { say(T.noToken); }
  if (body.dataset.open === "0") { showClosed(body.dataset.opensAt); } else { showChoose(); }
})();
