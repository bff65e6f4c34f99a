import { describe, expect, it } from "vitest";
import { FIELDS, fromInput, toInput } from "./configFields";
import { defaultConfig } from "./presets";

// Every leaf key of the engine's config must have a form field (issue 6: "every config field").
function leaves(obj: unknown, prefix = ""): string[] {
  if (obj && typeof obj === "object" && !Array.isArray(obj))
    return Object.entries(obj).flatMap(([k, v]) => leaves(v, prefix ? `${prefix}.${k}` : k));
  return [prefix];
}

describe("config fields", () => {
  it("cover every key of the default config", () => {
    const paths = new Set(FIELDS.map((f) => f.path));
    // nullable sub-objects are edited through their one meaningful leaf
    const viaLeaf: Record<string, string> = {
      "model.beta_schedule.test": "model.beta_schedule.test.n_timestep",
      "dataset.intensity": "dataset.intensity.window",
    };
    for (const k of leaves(defaultConfig())) expect(paths, k).toContain(viaLeaf[k] ?? k);
  });

  it("have unique labels (tests and screen readers find them by name)", () => {
    const labels = FIELDS.map((f) => f.label);
    expect(new Set(labels).size).toBe(labels.length);
  });

  it("parse and format values round trip", () => {
    expect(fromInput("intList", "1, 2,4")).toEqual({ ok: true, value: [1, 2, 4] });
    expect(fromInput("intList", "1, 2.5").ok).toBe(false);
    expect(fromInput("attnRes", "")).toEqual({ ok: true, value: null });
    expect(fromInput("attnRes", "none")).toEqual({ ok: true, value: [] });
    expect(toInput("attnRes", [])).toBe("none");
    expect(toInput("attnRes", [16, 8])).toBe("16, 8");
    expect(fromInput("pairOrNull", "0.5, 99.5")).toEqual({ ok: true, value: [0.5, 99.5] });
    expect(fromInput("pairOrNull", "1")).toEqual({ ok: false, error: "two numbers: low, high" });
    expect(fromInput("floatOrNull", " ")).toEqual({ ok: true, value: null });
    expect(fromInput("float", "1e-4")).toEqual({ ok: true, value: 1e-4 });
    expect(fromInput("int", "3.5")).toEqual({ ok: false, error: "must be a whole number" });
    expect(fromInput("int", "")).toEqual({ ok: false, error: "required" });
    expect(fromInput("intOrNull", "250")).toEqual({ ok: true, value: 250 });
  });
});
