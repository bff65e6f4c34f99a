// Presets (2D/3D x tiny/small/base) that fill every field of the New-job form, and the
// fix-ups that keep a config consistent (dataset type vs is_3d, nullable sub-objects).
import type { TrainConfig } from "./configTypes";
import { deepClone, getPath, setPath } from "./objpath";

export type Dims = "2d" | "3d";
export type Size = "tiny" | "small" | "base";

export const PRESET_SIZES: Size[] = ["tiny", "small", "base"];

export const PRESET_NOTES: Record<Size, string> = {
  tiny: "smoke test: trains in about a minute on a CPU",
  small: "a real run on one GPU in hours",
  base: "full-size model for pretraining",
};

/** The engine's defaults (ddpm/config.py), everything spelled out. */
export function defaultConfig(): TrainConfig {
  return {
    gpu: 0,
    experiment_path: "experiments",
    is_3d: false,
    seed: 0,
    model: {
      unet: {
        dim: 32,
        channel_mults: [1, 2, 4],
        res_blocks: 2,
        attn_res: null,
        num_head_channels: 32,
        self_condition: false,
        dropout: 0,
        linear_attn: false,
        checkpointing: false,
      },
      beta_schedule: { train: { schedule: "linear", n_timestep: 1000, linear_start: 1e-4, linear_end: 0.02 }, test: null },
      lr: 1e-4,
      optimizer: "adamw",
      weight_decay: 0,
      loss_type: "l2",
      objective: "pred_noise",
      use_ema: true,
      ema_decay: 0.999,
      iterations: 10000,
      freq_metrics: 1000,
      freq_checkpoint: 2000,
      keep_checkpoints: 3,
      warmup_steps: 0,
      lr_schedule: "constant",
      grad_clip: 1.0,
      precision: "fp32",
      min_snr_gamma: null,
      metric_samples: 4,
      metric_sampler: "dpmpp2m",
      metric_steps: 20,
    },
    dataset: {
      name: "volume3d",
      path: "datasets/",
      image_size: 64,
      image_channels: 1,
      batch_size: 2,
      grad_accumulation: 1,
      num_workers: 2,
      pin_memory: true,
      cache: true,
      clip_percentiles: [0.5, 99.5],
      intensity: null,
      flip: false,
      keep_aspect: true,
      val_fraction: 0.1,
    },
  };
}

type Overrides = Record<string, unknown>;

const SIZE_OVERRIDES: Record<Dims, Record<Size, Overrides>> = {
  "3d": {
    tiny: {
      "dataset.image_size": 16, "model.unet.dim": 8, "model.unet.channel_mults": [1, 2], "model.unet.res_blocks": 1,
      "model.unet.attn_res": [], "model.unet.num_head_channels": 8, "model.beta_schedule.train.schedule": "cosine", "model.beta_schedule.train.n_timestep": 100,
      "model.iterations": 40, "model.freq_metrics": 20, "model.freq_checkpoint": 20, "model.metric_samples": 1,
      "model.metric_steps": 5, "model.metric_sampler": "ddim", "model.lr": 1e-3, "model.ema_decay": 0.9,
      "dataset.batch_size": 2, "dataset.num_workers": 0, "dataset.pin_memory": false,
    },
    small: {
      "dataset.image_size": 32, "model.unet.dim": 32, "model.unet.channel_mults": [1, 2, 4], "model.unet.res_blocks": 2,
      "model.unet.attn_res": [8], "model.unet.num_head_channels": 32, "model.beta_schedule.train.n_timestep": 1000,
      "model.iterations": 20000, "model.freq_metrics": 1000, "model.freq_checkpoint": 2000, "model.lr": 2e-4,
      "dataset.batch_size": 4, "model.precision": "bf16", "model.ema_decay": 0.999,
    },
    base: {
      "dataset.image_size": 64, "model.unet.dim": 64, "model.unet.channel_mults": [1, 2, 4, 8], "model.unet.res_blocks": 2,
      "model.unet.attn_res": [8], "model.unet.num_head_channels": 32, "model.unet.linear_attn": true,
      "model.unet.checkpointing": true, "model.beta_schedule.train.n_timestep": 1000, "model.iterations": 100000,
      "model.freq_metrics": 2000, "model.freq_checkpoint": 5000, "model.lr": 1e-4, "dataset.batch_size": 2,
      "dataset.grad_accumulation": 4, "model.precision": "bf16", "model.ema_decay": 0.9999,
    },
  },
  "2d": {
    tiny: {
      "dataset.image_size": 16, "model.unet.dim": 16, "model.unet.channel_mults": [1, 2], "model.unet.res_blocks": 1,
      "model.unet.attn_res": [], "model.unet.num_head_channels": 16, "model.beta_schedule.train.schedule": "cosine", "model.beta_schedule.train.n_timestep": 100,
      "model.iterations": 40, "model.freq_metrics": 20, "model.freq_checkpoint": 20, "model.metric_samples": 4,
      "model.metric_steps": 5, "model.metric_sampler": "ddim", "model.lr": 1e-3, "model.ema_decay": 0.9,
      "dataset.batch_size": 4, "dataset.num_workers": 0, "dataset.pin_memory": false,
    },
    small: {
      "dataset.image_size": 64, "model.unet.dim": 64, "model.unet.channel_mults": [1, 2, 4], "model.unet.res_blocks": 2,
      "model.unet.attn_res": [16], "model.unet.num_head_channels": 32, "model.iterations": 30000,
      "model.freq_metrics": 1000, "model.freq_checkpoint": 2000, "model.lr": 2e-4, "dataset.batch_size": 32,
      "model.precision": "bf16", "model.ema_decay": 0.999,
    },
    base: {
      "dataset.image_size": 128, "model.unet.dim": 128, "model.unet.channel_mults": [1, 2, 2, 4], "model.unet.res_blocks": 2,
      "model.unet.attn_res": [16], "model.unet.num_head_channels": 64, "model.iterations": 200000,
      "model.freq_metrics": 5000, "model.freq_checkpoint": 10000, "model.lr": 1e-4, "dataset.batch_size": 32,
      "model.precision": "bf16", "model.ema_decay": 0.9999,
    },
  },
};

export function presetConfig(dims: Dims, size: Size): TrainConfig {
  let cfg = defaultConfig();
  cfg.is_3d = dims === "3d";
  cfg.dataset.name = dims === "3d" ? "volume3d" : "image2d";
  for (const [path, value] of Object.entries(SIZE_OVERRIDES[dims][size])) cfg = setPath(cfg, path, deepClone(value));
  return cfg;
}

/**
 * Make a config the schema accepts as the user meant it: the test schedule copies the train
 * schedule except its step count (the engine requires that), a null window removes the
 * intensity object, and the dataset type follows is_3d.
 */
export function normaliseConfig(input: TrainConfig): TrainConfig {
  let cfg = deepClone(input);
  const test = cfg.model?.beta_schedule?.test;
  if (test && cfg.model.beta_schedule.train) {
    if (test.n_timestep == null) cfg.model.beta_schedule.test = null;
    else cfg.model.beta_schedule.test = { ...cfg.model.beta_schedule.train, n_timestep: test.n_timestep };
  }
  if (cfg.dataset && cfg.dataset.intensity && getPath(cfg, "dataset.intensity.window") == null) cfg.dataset.intensity = null;
  if (cfg.dataset) cfg = setPath(cfg, "dataset.name", cfg.is_3d ? "volume3d" : "image2d");
  return cfg;
}

/** Set one form field, creating or removing the nullable parents it lives in. */
export function setField(cfg: TrainConfig, path: string, value: unknown): TrainConfig {
  if (path === "dataset.intensity.window") {
    return setPath(cfg, "dataset.intensity", value == null ? null : { window: value });
  }
  if (path === "model.beta_schedule.test.n_timestep") {
    return setPath(cfg, "model.beta_schedule.test", value == null ? null : { ...cfg.model.beta_schedule.train, n_timestep: value });
  }
  if (path === "is_3d") {
    return setPath(setPath(cfg, "is_3d", value), "dataset.name", value ? "volume3d" : "image2d");
  }
  if (path === "dataset.name") {
    return setPath(setPath(cfg, "dataset.name", value), "is_3d", value === "volume3d");
  }
  return setPath(cfg, path, value);
}
