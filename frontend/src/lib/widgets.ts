// How a config value is edited as text, by the widget type the server's config schema names
// for the key (GET /api/config/schema; the widget names are generated from ddpm.config's
// Literal). Nothing here knows a config key.
import type { ConfigField } from "../api/schema.gen";

export type Widget = ConfigField["widget"];

export type Parsed = { ok: true; value: unknown } | { ok: false; error: string };

/** Text shown in an input for a value ("" for null; "none" for a sides list that is empty). */
export function toInput(widget: Widget, value: unknown): string {
  if (value === null || value === undefined) return "";
  if (widget === "sides" && Array.isArray(value) && value.length === 0) return "none";
  if (Array.isArray(value)) return value.join(", ");
  return String(value);
}

function parseNumbers(text: string, integer: boolean): number[] | null {
  const nums = text.split(/[,\s]+/).filter(Boolean).map(Number);
  if (nums.some((n) => !Number.isFinite(n) || (integer && !Number.isInteger(n)))) return null;
  return nums;
}

/** Parse an input's text back to a value, or say why it cannot be. `nullable`: "" means null. */
export function fromInput(widget: Widget, text: string, nullable = false): Parsed {
  const t = text.trim();
  if (t === "" && (nullable || widget.startsWith("optional_") || widget === "sides" || widget === "pair")) return { ok: true, value: null };
  switch (widget) {
    case "int":
    case "float":
    case "optional_int":
    case "optional_float": {
      if (t === "") return { ok: false, error: "required" };
      const n = Number(t);
      if (!Number.isFinite(n)) return { ok: false, error: "must be a number" };
      if (widget.endsWith("int") && !Number.isInteger(n)) return { ok: false, error: "must be a whole number" };
      return { ok: true, value: n };
    }
    case "int_list": {
      const nums = parseNumbers(t, true);
      if (!nums || nums.length === 0) return { ok: false, error: "whole numbers separated by commas" };
      return { ok: true, value: nums };
    }
    case "sides": {
      if (t.toLowerCase() === "none") return { ok: true, value: [] };
      const nums = parseNumbers(t, true);
      return nums ? { ok: true, value: nums } : { ok: false, error: "sides separated by commas, empty or none" };
    }
    case "pair": {
      const nums = parseNumbers(t, false);
      if (!nums || nums.length !== 2) return { ok: false, error: "two numbers: low, high" };
      return { ok: true, value: nums };
    }
    default:
      return { ok: true, value: text };
  }
}

/** A hint of what an empty input means for the widgets where it means something. */
export function emptyMeaning(widget: Widget): string | null {
  if (widget === "sides") return "empty = lowest level, none = no attention";
  return null;
}
