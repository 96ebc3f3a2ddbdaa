/**
 * Model names appear in URLs and routing keys: lowercase slugs only. The
 * one pattern the API schema, the inference routes and the tools check.
 */
export const MODEL_NAME_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$/;
