// Turns the API's `detail` (a string, a list of {loc, msg} / {path, msg} items, or an
// object) into messages keyed by config path, so the form can show them beside fields.

export interface FieldError {
  path: string; // dotted path relative to the config ("model.unet.dim"), "" when global
  message: string;
}

// Prefixes FastAPI/pydantic put in front of the config's own key path.
const STRIP = new Set(["body", "config", "query", "path"]);

function locToPath(loc: unknown): string {
  if (typeof loc === "string") {
    const parts = loc.split(".").filter(Boolean);
    return normaliseParts(parts);
  }
  if (Array.isArray(loc)) return normaliseParts(loc.map(String));
  return "";
}

function normaliseParts(parts: string[]): string {
  let i = 0;
  while (i < parts.length && STRIP.has(parts[i])) i++;
  return parts.slice(i).join(".");
}

function itemToError(item: unknown): FieldError {
  if (typeof item === "string") return { path: "", message: item };
  if (Array.isArray(item) && item.length === 2 && typeof item[1] === "string") {
    return { path: locToPath(item[0]), message: item[1] };
  }
  if (item && typeof item === "object") {
    const o = item as Record<string, unknown>;
    const loc = o.loc ?? o.path ?? o.field ?? o.key;
    const msg = o.msg ?? o.message ?? o.reason ?? o.detail ?? JSON.stringify(o);
    return { path: locToPath(loc), message: String(msg) };
  }
  return { path: "", message: String(item) };
}

/** Flatten any `detail` shape into a list of field errors. */
export function parseDetail(detail: unknown): FieldError[] {
  if (detail == null) return [];
  if (Array.isArray(detail)) return detail.map(itemToError);
  if (typeof detail === "string") return [{ path: "", message: detail }];
  if (typeof detail === "object") {
    const o = detail as Record<string, unknown>;
    if (Array.isArray(o.errors)) return o.errors.map(itemToError);
    if ("loc" in o || "msg" in o || "path" in o) return [itemToError(o)];
    // {"model.lr": "must be > 0"} style
    return Object.entries(o).map(([k, v]) => ({ path: locToPath(k), message: String(v) }));
  }
  return [{ path: "", message: String(detail) }];
}

/** One-line human text of a detail, for toasts and file rows. */
export function detailText(detail: unknown): string {
  const errs = parseDetail(detail);
  if (errs.length === 0) return "Unknown error";
  return errs.map((e) => (e.path ? `${e.path}: ${e.message}` : e.message)).join("; ");
}

/**
 * Group errors by the form field they belong to. An error on "model.unet" with known
 * fields below it stays global; an error on a deeper path than any field ("dataset.
 * clip_percentiles.0") is attached to the nearest field above it.
 */
export function mapErrorsToFields(
  errors: FieldError[],
  fieldPaths: string[],
): { byField: Record<string, string[]>; global: FieldError[] } {
  const known = new Set(fieldPaths);
  const byField: Record<string, string[]> = {};
  const global: FieldError[] = [];
  for (const e of errors) {
    let p = e.path;
    while (p && !known.has(p)) p = p.includes(".") ? p.slice(0, p.lastIndexOf(".")) : "";
    if (p) (byField[p] ??= []).push(e.message);
    else global.push(e);
  }
  return { byField, global };
}
