// Starts the vendored Swagger UI with the settings the server rendered (no inline script).
(function () {
  var config = JSON.parse(document.getElementById("swagger-settings").textContent);
  config.dom_id = "#swagger-ui";
  config.presets = [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset];
  config.layout = "StandaloneLayout";
  // Calls from the docs page ride on the session: send Django's CSRF token with them.
  var match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
  config.requestInterceptor = function (req) {
    if (match) { req.headers["X-CSRFToken"] = decodeURIComponent(match[1]); }
    return req;
  };
  window.ui = SwaggerUIBundle(config);
})();
