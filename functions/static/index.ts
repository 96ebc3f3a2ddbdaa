import swaggerUiPageCss from "swagger-ui-dist/index.css";
import swaggerUiPackage from "swagger-ui-dist/package.json";
import swaggerUiCss from "swagger-ui-dist/swagger-ui.css";
import swaggerUiBundle from "swagger-ui-dist/swagger-ui-bundle.js";
import docsScript from "../docs/docs.browser.js";
import { staticAssets } from "./assets";

/** A file of the pinned swagger-ui-dist, named by its exact version. */
const swaggerUi = (text: string) => ({ text, version: `swagger-ui-${swaggerUiPackage.version}` });

/**
 * Every file the Worker serves to browsers, by the name its URL ends in.
 * Swagger UI comes from swagger-ui-dist, pinned in package.json: the bundle
 * and the stylesheets of the UI and of its page, nothing else of the package.
 */
export const assets = staticAssets({
  "swagger-ui-bundle.js": swaggerUi(swaggerUiBundle),
  "swagger-ui.css": swaggerUi(swaggerUiCss),
  "swagger-ui-page.css": swaggerUi(swaggerUiPageCss),
  "docs.js": docsScript,
});
