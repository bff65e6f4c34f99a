import { describe, expect, it } from "vitest";
import { estimateParams } from "./paramEstimate";
import { presetConfig } from "./presets";

// Reference counts: sum(p.numel()) of ddpm.nn.unet.UNet.from_config(load_config(preset)),
// measured with torch 2.13 on the meta device. The estimate must match the engine exactly.
const TORCH_COUNTS: Array<[string, "2d" | "3d", "tiny" | "small" | "base", number]> = [
  ["3D tiny", "3d", "tiny", 79617],
  ["3D small", "3d", "small", 8370209],
  ["3D base", "3d", "base", 133825089],
  ["2D tiny", "2d", "tiny", 125761],
  ["2D small", "2d", "small", 13166401],
  ["2D base", "2d", "base", 60681857],
];

describe("estimateParams", () => {
  it.each(TORCH_COUNTS)("matches the engine's UNet for %s", (_n, dims, size, expected) => {
    expect(estimateParams(presetConfig(dims, size))).toBe(expected);
  });

  it("counts self-conditioning, linear attention, RGB input and the default attention level", () => {
    const cfg = presetConfig("2d", "small");
    cfg.model.unet.self_condition = true;
    cfg.model.unet.linear_attn = true;
    cfg.dataset.image_channels = 3;
    cfg.model.unet.attn_res = null;
    expect(estimateParams(cfg)).toBe(13502723);
  });

  it("grows with width and depth", () => {
    const a = presetConfig("3d", "small");
    const b = presetConfig("3d", "small");
    b.model.unet.dim = 64;
    const c = presetConfig("3d", "small");
    c.model.unet.res_blocks = 3;
    expect(estimateParams(b)!).toBeGreaterThan(3 * estimateParams(a)!);
    expect(estimateParams(c)!).toBeGreaterThan(estimateParams(a)!);
  });

  it("returns null for a config that cannot be built", () => {
    const cfg = presetConfig("2d", "tiny");
    cfg.model.unet.channel_mults = [];
    expect(estimateParams(cfg)).toBeNull();
    const cfg2 = presetConfig("2d", "tiny");
    (cfg2.model.unet as { dim: unknown }).dim = "wide";
    expect(estimateParams(cfg2)).toBeNull();
  });
});
