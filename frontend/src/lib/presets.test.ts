import { describe, expect, it } from "vitest";
import { FIELDS } from "./configFields";
import { getPath } from "./objpath";
import { featureSides } from "./paramEstimate";
import { PRESET_SIZES, defaultConfig, normaliseConfig, presetConfig, setField } from "./presets";

const NULLABLE = new Set(["model.unet.attn_res", "model.beta_schedule.test.n_timestep", "model.min_snr_gamma", "model.grad_clip", "dataset.clip_percentiles", "dataset.intensity.window"]);

describe("presets", () => {
  for (const dims of ["2d", "3d"] as const)
    for (const size of PRESET_SIZES)
      it(`${dims} ${size} fills every form field consistently`, () => {
        const cfg = presetConfig(dims, size);
        for (const f of FIELDS) {
          const v = getPath(cfg, f.path);
          if (!NULLABLE.has(f.path)) expect(v, f.path).not.toBeUndefined();
          if (!NULLABLE.has(f.path)) expect(v, f.path).not.toBeNull();
          if (f.kind === "enum") expect(f.options, f.path).toContain(v);
        }
        expect(cfg.is_3d).toBe(dims === "3d");
        expect(cfg.dataset.name).toBe(dims === "3d" ? "volume3d" : "image2d");
        // the engine's cross-field rules (ddpm/config.py TrainConfig.problems)
        const u = cfg.model.unet;
        const levels = u.channel_mults.length;
        expect(cfg.dataset.image_size % 2 ** (levels - 1)).toBe(0);
        const sides = featureSides(cfg.dataset.image_size, levels);
        const attn = u.attn_res ?? [sides[levels - 1]];
        for (const s of attn) {
          expect(sides).toContain(s);
          expect((u.dim * u.channel_mults[sides.indexOf(s)]) % u.num_head_channels).toBe(0);
        }
        expect(u.dim % 8).toBe(0);
      });

  it("tiny presets finish quickly without loader processes", () => {
    for (const dims of ["2d", "3d"] as const) {
      const cfg = presetConfig(dims, "tiny");
      expect(cfg.dataset.num_workers).toBe(0);
      expect(cfg.model.iterations).toBeLessThanOrEqual(100);
      expect(cfg.model.freq_metrics).toBeLessThanOrEqual(cfg.model.iterations);
    }
  });

  it("presets are independent copies", () => {
    const a = presetConfig("3d", "tiny");
    a.model.unet.channel_mults.push(8);
    expect(presetConfig("3d", "tiny").model.unet.channel_mults).toEqual([1, 2]);
  });
});

describe("setField / normaliseConfig", () => {
  it("creates and removes the intensity object with its window", () => {
    let cfg = setField(defaultConfig(), "dataset.intensity.window", [-1000, 400]);
    expect(cfg.dataset.intensity).toEqual({ window: [-1000, 400] });
    cfg = setField(cfg, "dataset.intensity.window", null);
    expect(cfg.dataset.intensity).toBeNull();
  });

  it("keeps the test schedule equal to train except its step count", () => {
    let cfg = setField(defaultConfig(), "model.beta_schedule.train.schedule", "cosine");
    cfg = setField(cfg, "model.beta_schedule.test.n_timestep", 250);
    cfg = setField(cfg, "model.beta_schedule.train.linear_end", 0.03);
    const n = normaliseConfig(cfg);
    expect(n.model.beta_schedule.test).toEqual({ schedule: "cosine", n_timestep: 250, linear_start: 1e-4, linear_end: 0.03 });
    expect(normaliseConfig(setField(cfg, "model.beta_schedule.test.n_timestep", null)).model.beta_schedule.test).toBeNull();
  });

  it("ties the dataset type to is_3d both ways", () => {
    const cfg = setField(presetConfig("3d", "tiny"), "is_3d", false);
    expect(cfg.dataset.name).toBe("image2d");
    expect(setField(cfg, "dataset.name", "volume3d").is_3d).toBe(true);
    const raw = presetConfig("2d", "tiny");
    raw.is_3d = true; // edited in the JSON editor
    expect(normaliseConfig(raw).dataset.name).toBe("volume3d");
  });

  it("does not mutate its input", () => {
    const cfg = presetConfig("2d", "small");
    const before = JSON.stringify(cfg);
    setField(cfg, "model.unet.dim", 8);
    normaliseConfig(cfg);
    expect(JSON.stringify(cfg)).toBe(before);
  });
});

describe("preset noise schedules", () => {
  it("short schedules are cosine (a 100-step linear schedule leaves 60% of the data in x_T)", () => {
    for (const dims of ["2d", "3d"] as const) {
      const s = presetConfig(dims, "tiny").model.beta_schedule.train;
      expect(s.n_timestep).toBe(100);
      expect(s.schedule).toBe("cosine");
    }
  });
});
