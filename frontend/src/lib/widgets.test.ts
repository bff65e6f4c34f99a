import { describe, expect, it } from "vitest";
import { fromInput, toInput } from "./widgets";

describe("widgets", () => {
  it("parse and format values round trip", () => {
    expect(fromInput("int_list", "1, 2,4")).toEqual({ ok: true, value: [1, 2, 4] });
    expect(fromInput("int_list", "1, 2.5").ok).toBe(false);
    expect(fromInput("sides", "")).toEqual({ ok: true, value: null });
    expect(fromInput("sides", "none")).toEqual({ ok: true, value: [] });
    expect(toInput("sides", [])).toBe("none");
    expect(toInput("sides", [16, 8])).toBe("16, 8");
    expect(fromInput("pair", "0.5, 99.5")).toEqual({ ok: true, value: [0.5, 99.5] });
    expect(fromInput("pair", "1")).toEqual({ ok: false, error: "two numbers: low, high" });
    expect(fromInput("pair", "")).toEqual({ ok: true, value: null });
    expect(fromInput("optional_float", " ")).toEqual({ ok: true, value: null });
    expect(fromInput("float", "1e-4")).toEqual({ ok: true, value: 1e-4 });
    expect(fromInput("int", "3.5")).toEqual({ ok: false, error: "must be a whole number" });
    expect(fromInput("int", "")).toEqual({ ok: false, error: "required" });
    expect(fromInput("optional_int", "250")).toEqual({ ok: true, value: 250 });
    expect(fromInput("optional_int", "2.5")).toEqual({ ok: false, error: "must be a whole number" });
  });

  it("an empty input is null only where null is allowed", () => {
    expect(fromInput("int", "", true)).toEqual({ ok: true, value: null });
    expect(fromInput("string", "")).toEqual({ ok: true, value: "" });
    expect(toInput("optional_int", null)).toBe("");
  });
});
