import { Hono } from "hono";
import type { AppEnv } from "../env";

/**
 * The browsable API reference at /api/v1/docs: Swagger UI over /api/v1/openapi.json, loaded
 * with no request to the internet. Swagger UI's own files (swagger-ui-bundle.js,
 * swagger-ui.css) are Workers static assets under /api/v1/docs/, copied from the
 * swagger-ui-dist npm package by scripts/build-assets.mjs (wrangler.toml [build]); this
 * router serves the page and its start-up script. The Content-Security-Policy keeps every
 * request the page makes on this origin, whatever the bundle holds: no CDN, no validator
 * badge (validatorUrl: null), no analytics. See docs/admin.md.
 */
export const DOCS_PATH = "/api/v1/docs";
export const OPENAPI_PATH = "/api/v1/openapi.json";

/** Everything the page loads is on this origin; inline styles only (Swagger UI sets some). */
export const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Edge MQTT broker: HTTP API reference</title>
<link rel="stylesheet" href="${DOCS_PATH}/swagger-ui.css">
</head>
<body>
<noscript>The reference needs JavaScript. The document itself: <a href="${OPENAPI_PATH}">${OPENAPI_PATH}</a>.</noscript>
<div id="swagger-ui"></div>
<script src="${DOCS_PATH}/swagger-ui-bundle.js"></script>
<script src="${DOCS_PATH}/init.js"></script>
</body>
</html>
`;

/**
 * Swagger UI's configuration. Everything that could reach another host is off: the validator
 * badge (validator.swagger.io by default), and no URL but this origin's OpenAPI document.
 * "Authorize" keeps the admin token in the page only (persistAuthorization: false).
 */
const INIT = `"use strict";
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: new URL(${JSON.stringify(OPENAPI_PATH)}, window.location.origin).href,
    dom_id: "#swagger-ui",
    validatorUrl: null,
    deepLinking: true,
    persistAuthorization: false,
    tryItOutEnabled: false,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
`;

export const docs = new Hono<AppEnv>()
  .get("/", (c) =>
    c.html(PAGE, 200, {
      "Content-Security-Policy": DOCS_CSP,
      "X-Content-Type-Options": "nosniff",
      "Referrer-Policy": "no-referrer",
    }),
  )
  .get("/init.js", (c) =>
    c.body(INIT, 200, {
      "Content-Type": "text/javascript; charset=utf-8",
      "X-Content-Type-Options": "nosniff",
    }),
  );
