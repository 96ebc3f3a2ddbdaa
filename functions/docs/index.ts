import type { Handler, MiddlewareHandler } from "hono";
import { html } from "hono/html";
import { secureHeaders } from "hono/secure-headers";
import type { AppEnv } from "../app-env";
import { assets } from "../static";

/**
 * What the docs page may load: its own origin's files only. Operators paste
 * the admin token into this page, so no script but the served ones runs
 * (no inline script, no eval) and nothing it loads comes from another host.
 * `data:` images are Swagger UI's icons, inlined in its stylesheet.
 */
export const docsSecurityHeaders: MiddlewareHandler<AppEnv> = secureHeaders({
  contentSecurityPolicy: {
    defaultSrc: ["'none'"],
    scriptSrc: ["'self'"],
    styleSrc: ["'self'"],
    imgSrc: ["'self'", "data:"],
    connectSrc: ["'self'"],
    fontSrc: ["'self'"],
    baseUri: ["'none'"],
    formAction: ["'none'"],
    frameAncestors: ["'none'"],
  },
  referrerPolicy: "no-referrer",
  xFrameOptions: "DENY",
});

/** Swagger UI over /openapi.json, with every file it needs served by the Worker. */
export const docsPage: Handler<AppEnv> = (c) => {
  // The page names the current asset hashes: revalidate it on every visit.
  c.header("cache-control", "no-cache");
  return c.html(html`<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>Airlock API</title>
    <link rel="icon" href="data:," />
    <link rel="stylesheet" href="${assets.path("swagger-ui.css")}" />
    <link rel="stylesheet" href="${assets.path("swagger-ui-page.css")}" />
    <script defer src="${assets.path("swagger-ui-bundle.js")}"></script>
    <script defer src="${assets.path("docs.js")}"></script>
  </head>
  <body>
    <div id="swagger-ui" data-openapi-url="/openapi.json"></div>
  </body>
</html>
`);
};
