// Starts Swagger UI on /docs from a file, not an inline script (the Content-Security-Policy allows none).
window.addEventListener("load", function () {
  var container = document.getElementById("swagger-ui-container");
  var config = { url: container.dataset.specUrl, dom_id: "#swagger-ui-container" };
  var extra = JSON.parse(container.dataset.config || "{}");
  for (var name in extra) {
    config[name] = extra[name];
  }
  window.ui = SwaggerUIBundle(config);
});
