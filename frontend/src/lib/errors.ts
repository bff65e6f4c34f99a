// The API's error `detail` (ErrorResponse: a sentence, or a list of {loc, msg} whose loc is a
// dotted key path such as "config.model.lr" or "dataset_id") as messages keyed by form path.
import type { ErrorResponse } from "../api/schema.gen";

export interface FieldError {
  path: string; // dotted path relative to the config ("model.unet.dim"), the job's own field ("device"), or "" when global
  message: string;
}

// The train config travels as the job's `config` field, so its errors are located under it.
const CONFIG_PREFIX = "config.";

export function fieldErrors(detail: ErrorResponse["detail"]): FieldError[] {
  if (typeof detail === "string") return [{ path: "", message: detail }];
  return detail.map((e) => ({ path: e.loc.startsWith(CONFIG_PREFIX) ? e.loc.slice(CONFIG_PREFIX.length) : e.loc, message: e.msg }));
}

/** One line of human text of a detail, for error boxes and file rows. */
export function detailText(detail: ErrorResponse["detail"]): string {
  return fieldErrors(detail)
    .map((e) => (e.path ? `${e.path}: ${e.message}` : e.message))
    .join("; ");
}

/**
 * Group errors by the form field they belong to. An error on a deeper path than any field
 * ("dataset.clip_percentiles.0") is attached to the nearest field above it; one that matches
 * no field ("modle", a whole sub-object) stays global.
 */
export function mapErrorsToFields(errors: FieldError[], fieldPaths: Iterable<string>): { byField: Record<string, string[]>; global: FieldError[] } {
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
