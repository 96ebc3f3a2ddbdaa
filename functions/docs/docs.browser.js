// Starts Swagger UI on /docs. A served file rather than an inline script, so
// the page's Content-Security-Policy can refuse every inline script.
const root = document.getElementById("swagger-ui");

window.ui = SwaggerUIBundle({
  domNode: root,
  // The page names the document (data-openapi-url): same origin, a path.
  url: root.dataset.openapiUrl,
  deepLinking: true,
  // No badge from the public validator: it would send the document to
  // another host (and the CSP would refuse the image anyway).
  validatorUrl: null,
  // Tokens entered under Authorize stay in this tab's memory, never in
  // localStorage.
  persistAuthorization: false,
  // Ignore ?url= and ?configUrl= in the address: the page shows Airlock's
  // own document and nothing else.
  queryConfigEnabled: false,
});
