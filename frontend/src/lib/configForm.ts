// The New-job form's logic over the config schema the server serves (GET /api/config/schema):
// which inputs to show, in which group, and how a value is read from and written into the
// config object. Nothing here names a config key: a key added to ddpm/config.py gets an input.
import type { ConfigField, ConfigSchema } from "../api/schema.gen";
import { getPath, setPath } from "./objpath";

export type { ConfigField, ConfigSchema };

export type Config = Record<string, unknown>;

export interface FieldGroup {
  id: string;
  title: string;
  fields: ConfigField[]; // shown at once
  advanced: ConfigField[]; // folded away under "More"
}

/** The fields of one config kind, by group in the server's order (unknown groups last). */
export function groupFields(schema: ConfigSchema, kind: string): FieldGroup[] {
  const fields = schema.kinds[kind]?.fields ?? [];
  const groups: FieldGroup[] = schema.groups.map((g) => ({ id: g.id, title: g.title, fields: [], advanced: [] }));
  for (const f of fields) {
    let g = groups.find((x) => x.id === f.group);
    if (!g) groups.push((g = { id: f.group, title: f.group, fields: [], advanced: [] }));
    (f.advanced ? g.advanced : g.fields).push(f);
  }
  return groups.filter((g) => g.fields.length + g.advanced.length > 0);
}

/** The groups without the fields whose hardware (``requires``, e.g. "gpu") no live worker has;
 * a field with an error stays, so the error has a place. */
export function withoutUnavailable(groups: FieldGroup[], have: ReadonlySet<string>, errors: Record<string, unknown> = {}): FieldGroup[] {
  const keep = (f: ConfigField) => !f.requires || have.has(f.requires) || f.path in errors;
  return groups
    .map((g) => ({ ...g, fields: g.fields.filter(keep), advanced: g.advanced.filter(keep) }))
    .filter((g) => g.fields.length + g.advanced.length > 0);
}

/** Paths errors can attach to: every field, plus the job's own fields beside the config. */
export function errorPaths(schema: ConfigSchema, kind: string, jobFields: string[] = ["device", "dataset_id"]): string[] {
  return [...(schema.kinds[kind]?.fields ?? []).map((f) => f.path), ...jobFields];
}

export function fieldId(path: string): string {
  return "cfg-" + path.replace(/\./g, "-");
}

function parentPath(path: string): string {
  return path.includes(".") ? path.slice(0, path.lastIndexOf(".")) : "";
}

/** The value the form shows for a field (null when its optional parent object is absent). */
export function readField(config: Config, field: ConfigField): unknown {
  const v = getPath(config, field.path);
  return v === undefined ? null : v;
}

/**
 * Set one field. A field inside an optional object (parent_nullable) creates that object when
 * it gets a value (its other keys at their served defaults) and removes it when cleared.
 */
export function writeField(config: Config, field: ConfigField, value: unknown, fields: ConfigField[]): Config {
  if (!field.parent_nullable) return setPath(config, field.path, value);
  const parent = parentPath(field.path);
  if (value === null && !field.nullable) return setPath(config, parent, null);
  const current = getPath(config, parent);
  if (current && typeof current === "object") return setPath(config, field.path, value);
  let created: Config = {};
  for (const sibling of fields)
    if (parentPath(sibling.path) === parent && sibling.path !== field.path && !sibling.required)
      created = setPath(created, sibling.path.slice(parent.length + 1), sibling.default ?? null);
  created = setPath(created, field.path.slice(parent.length + 1), value);
  return setPath(config, parent, created);
}

/** The config with every key it leaves out at its served default (a preset may spell only what
 * it changes), so each input shows the value the server will use. Optional objects stay absent. */
export function withDefaults(config: Config, fields: ConfigField[]): Config {
  let out = config;
  for (const f of fields)
    if (!f.parent_nullable && !f.required && getPath(out, f.path) === undefined) out = setPath(out, f.path, f.default ?? null);
  return out;
}
