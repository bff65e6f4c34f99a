import { describe, expect, it } from "vitest";
import { matchingPreset } from "./presetChoice";

const preset = (name: string, is_3d: boolean) => ({ name, title: name, note: "", kind: "train", config: { is_3d } });
const presets = [preset("a3", true), preset("b3", true), preset("a2", false), preset("b2", false)];

describe("matchingPreset", () => {
  it("starts with the first served preset that fits the dataset", () => {
    expect(matchingPreset(presets, null, null)?.name).toBe("a3");
    expect(matchingPreset(presets, null, false)?.name).toBe("a2");
    expect(matchingPreset([], null, true)).toBeNull();
  });

  it("keeps a fitting choice and swaps to the same place in the other kind's list", () => {
    expect(matchingPreset(presets, presets[1], true)?.name).toBe("b3");
    expect(matchingPreset(presets, presets[1], false)?.name).toBe("b2");
    expect(matchingPreset(presets, presets[2], true)?.name).toBe("a3");
    expect(matchingPreset([preset("a3", true), preset("b3", true), preset("a2", false)], presets[1], false)?.name).toBe("a2");
  });
});
