import { describe, expect, it } from "vitest";
import { formatBytes, formatCount, formatDuration, formatNumber, formatRate, formatShape, formatSpacing } from "./format";

describe("formatDuration (ETA)", () => {
  it.each([
    [0, "0 s"],
    [42.4, "42 s"],
    [59.6, "1 min 00 s"],
    [125, "2 min 05 s"],
    [3600, "1 h 00 min"],
    [3 * 3600 + 7 * 60 + 30, "3 h 07 min"],
    [26 * 3600, "1 d 2 h"],
  ])("%s s -> %s", (s, text) => expect(formatDuration(s)).toBe(text));

  it("shows a dash when unknown", () => {
    for (const v of [null, undefined, NaN, Infinity, -5]) expect(formatDuration(v as number)).toBe("—");
  });
});

describe("other formats", () => {
  it("sizes, rates, counts, shapes", () => {
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(1536)).toBe("1.50 KB");
    expect(formatBytes(5 * 1024 ** 3)).toBe("5.00 GB");
    expect(formatRate(12.345)).toBe("12.35 it/s");
    expect(formatRate(0.25)).toBe("4.00 s/it");
    expect(formatRate(0)).toBe("—");
    expect(formatCount(8370209)).toBe("8.37 M");
    expect(formatCount(79617)).toBe("79.6 k");
    expect(formatNumber(0.000123)).toBe("1.23e-4");
    expect(formatNumber(0.5123456)).toBe("0.5123");
    expect(formatShape([1, 16, 16, 16])).toBe("1 × 16 × 16 × 16");
    expect(formatSpacing([1, 1.25, 2.5])).toBe("1 × 1.25 × 2.5 mm");
  });
});
