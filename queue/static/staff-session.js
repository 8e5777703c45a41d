/* Signing staff in through the API, for the console and the dashboard: tokens in sessionStorage, one
   refresh on a 401, errors carrying the API's localised message and code. */
(function () {
  "use strict";
  var API = "/api/v1";
  var KEY = "sanad-staff";

  function Session(lang) {
    this.lang = lang;
    this.access = null;
    this.refreshToken = null;
    this.account = null;
    try {
      var saved = JSON.parse(sessionStorage.getItem(KEY) || "{}");
      this.access = saved.access || null;
      this.refreshToken = saved.refresh || null;
      this.extra = saved.extra || {};
    } catch (error) { this.extra = {}; }
  }

  Session.prototype.save = function () {
    sessionStorage.setItem(KEY, JSON.stringify({ access: this.access, refresh: this.refreshToken, extra: this.extra }));
  };

  Session.prototype.signedIn = function () { return Boolean(this.access || this.refreshToken); };

  Session.prototype.request = function (method, path, body, retried) {
    var self = this;
    var headers = { "Accept": "application/json", "Accept-Language": self.lang };
    if (self.access) { headers["Authorization"] = "Bearer " + self.access; }
    if (body !== undefined) { headers["Content-Type"] = "application/json"; }
    return fetch(API + path, { method: method, headers: headers, body: body === undefined ? undefined : JSON.stringify(body) })
      .then(function (response) {
        if (response.status === 401 && self.refreshToken && !retried) {
          return self.refresh().then(function () { return self.request(method, path, body, true); });
        }
        if (response.status === 204) { return null; }
        return response.json().catch(function () { return null; }).then(function (data) {
          if (!response.ok) {
            var error = new Error((data && data.error && data.error.message) || String(response.status));
            error.code = data && data.error && data.error.code;
            error.details = (data && data.error && data.error.details) || {};
            error.status = response.status;
            throw error;
          }
          return data;
        });
      });
  };

  Session.prototype.refresh = function () {
    var self = this;
    var token = self.refreshToken;
    self.access = null;
    return self.request("POST", "/auth/refresh", { refresh_token: token }, true).then(function (tokens) {
      self.access = tokens.access_token;
      self.refreshToken = tokens.refresh_token;
      self.save();
    }, function (error) { self.clear(); throw error; });
  };

  Session.prototype.login = function (nationalId, password) {
    var self = this;
    return self.request("POST", "/auth/login", { national_id: nationalId, password: password }).then(function (tokens) {
      self.access = tokens.access_token;
      self.refreshToken = tokens.refresh_token;
      self.save();
      return self.me();
    });
  };

  Session.prototype.me = function () {
    var self = this;
    return self.request("GET", "/me").then(function (account) { self.account = account; return account; });
  };

  Session.prototype.logout = function () {
    if (this.refreshToken) { this.request("POST", "/auth/logout", { refresh_token: this.refreshToken }).catch(function () {}); }
    this.clear();
  };

  Session.prototype.clear = function () {
    this.access = null;
    this.refreshToken = null;
    this.account = null;
    this.extra = {};
    sessionStorage.removeItem(KEY);
  };

  // The page in the account's language: reload once with ?lang= when the account speaks the other one.
  Session.prototype.followAccountLanguage = function (account) {
    var wanted = account.language === "en" ? "en" : "ar";
    var params = new URLSearchParams(window.location.search);
    if (wanted !== this.lang && !params.has("lang")) {
      params.set("lang", wanted);
      window.location.search = params.toString();
      return true;
    }
    return false;
  };

  window.StaffSession = Session;
})();
