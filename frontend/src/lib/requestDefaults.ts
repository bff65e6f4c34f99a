// Defaults and allowed values of a request's fields as the running API describes them in its
// OpenAPI document (/openapi.json), so a form starts from the server's defaults (e.g. the one
// default sampler, ddpm.config.DEFAULT_SAMPLER) instead of a copy.
import { apiFetch } from "../api/client";

type JsonSchema = { [k: string]: unknown; $ref?: string; default?: unknown; enum?: unknown[]; allOf?: JsonSchema[]; anyOf?: JsonSchema[]; properties?: Record<string, JsonSchema> };
export interface OpenApiDoc {
  components?: { schemas?: Record<string, JsonSchema> };
}

export interface FieldDefaults {
  default: unknown;
  options: string[] | null;
}

function resolve(doc: OpenApiDoc, s: JsonSchema | undefined): JsonSchema {
  let cur = s ?? {};
  for (let i = 0; cur.$ref && i < 10; i++) cur = doc.components?.schemas?.[cur.$ref.split("/").pop() ?? ""] ?? {};
  return cur;
}

/** The default and enum values of each property of the request model `model`. */
export function requestDefaults(doc: OpenApiDoc, model: string): Record<string, FieldDefaults> {
  const props = resolve(doc, doc.components?.schemas?.[model]).properties ?? {};
  const out: Record<string, FieldDefaults> = {};
  for (const [name, raw] of Object.entries(props)) {
    const arms = [raw, ...(raw.allOf ?? []), ...(raw.anyOf ?? [])].map((x) => resolve(doc, x));
    const withEnum = arms.find((a) => Array.isArray(a.enum));
    out[name] = { default: raw.default ?? arms.find((a) => a.default !== undefined)?.default, options: withEnum ? withEnum.enum!.map(String) : null };
  }
  return out;
}

let served: Promise<OpenApiDoc> | null = null;

/** The API's OpenAPI document, fetched once per page load. */
export function servedOpenApi(): Promise<OpenApiDoc> {
  served ??= apiFetch("/openapi.json")
    .then((r) => r.json() as Promise<OpenApiDoc>)
    .catch((e) => {
      served = null; // try again next time
      throw e;
    });
  return served;
}
