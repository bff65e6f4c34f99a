// Every key of the training config (ddpm/config.py), described once: the New-job form is
// generated from this list and the error mapping uses its paths.

export type FieldKind =
  | "int"
  | "float"
  | "bool"
  | "enum"
  | "string"
  | "intList" // "1, 2, 4"
  | "attnRes" // "" = lowest level (null), "none" = [] , "8, 4"
  | "floatOrNull" // "" = null
  | "intOrNull"
  | "pairOrNull"; // "0.5, 99.5" or "" = null

export type Group = "general" | "model" | "diffusion" | "training" | "data";

export interface FieldSpec {
  path: string;
  label: string;
  group: Group;
  kind: FieldKind;
  options?: string[];
  help?: string;
  min?: number;
  max?: number;
}

export const GROUPS: Array<{ id: Group; title: string }> = [
  { id: "general", title: "General" },
  { id: "model", title: "Model (U-Net)" },
  { id: "diffusion", title: "Diffusion" },
  { id: "training", title: "Training" },
  { id: "data", title: "Data" },
];

export const FIELDS: FieldSpec[] = [
  { path: "is_3d", label: "3D volumes", group: "general", kind: "bool", help: "3D (B,C,D,H,W) or 2D (B,C,H,W)" },
  { path: "seed", label: "Seed", group: "general", kind: "int", min: 0 },
  { path: "gpu", label: "GPU index", group: "general", kind: "int", min: -1, help: "CUDA device on a GPU worker; -1 = CPU" },
  { path: "experiment_path", label: "Experiment path", group: "general", kind: "string", help: "where runs go (the server may place runs in its data folder)" },

  { path: "model.unet.dim", label: "Base channels", group: "model", kind: "int", min: 8, help: "multiple of 8" },
  { path: "model.unet.channel_mults", label: "Channel multipliers", group: "model", kind: "intList", help: "one level per entry, e.g. 1, 2, 4" },
  { path: "model.unet.res_blocks", label: "Residual blocks per level", group: "model", kind: "int", min: 1 },
  { path: "model.unet.attn_res", label: "Attention at sides", group: "model", kind: "attnRes", help: "feature-map sides with full attention; empty = lowest level, none = no attention" },
  { path: "model.unet.num_head_channels", label: "Channels per head", group: "model", kind: "int", min: 1 },
  { path: "model.unet.dropout", label: "Dropout", group: "model", kind: "float", min: 0, max: 0.99 },
  { path: "model.unet.self_condition", label: "Self-conditioning", group: "model", kind: "bool" },
  { path: "model.unet.linear_attn", label: "Linear attention elsewhere", group: "model", kind: "bool" },
  { path: "model.unet.checkpointing", label: "Activation checkpointing", group: "model", kind: "bool", help: "less memory, ~30% slower" },

  { path: "model.beta_schedule.train.schedule", label: "Noise schedule", group: "diffusion", kind: "enum", options: ["linear", "cosine", "sigmoid", "quadratic"] },
  { path: "model.beta_schedule.train.n_timestep", label: "Timesteps", group: "diffusion", kind: "int", min: 2 },
  { path: "model.beta_schedule.train.linear_start", label: "Beta start", group: "diffusion", kind: "float" },
  { path: "model.beta_schedule.train.linear_end", label: "Beta end", group: "diffusion", kind: "float" },
  { path: "model.beta_schedule.test.n_timestep", label: "Default sampling steps", group: "diffusion", kind: "intOrNull", help: "ancestral steps at test time; empty = all timesteps" },
  { path: "model.objective", label: "Objective", group: "diffusion", kind: "enum", options: ["pred_noise", "pred_x0", "pred_v"] },
  { path: "model.loss_type", label: "Loss", group: "diffusion", kind: "enum", options: ["l2", "l1", "huber"] },
  { path: "model.min_snr_gamma", label: "Min-SNR gamma", group: "diffusion", kind: "floatOrNull", help: "empty = off, e.g. 5" },

  { path: "model.iterations", label: "Iterations", group: "training", kind: "int", min: 1 },
  { path: "model.lr", label: "Learning rate", group: "training", kind: "float" },
  { path: "model.optimizer", label: "Optimizer", group: "training", kind: "enum", options: ["adamw", "adam"] },
  { path: "model.weight_decay", label: "Weight decay", group: "training", kind: "float", min: 0 },
  { path: "model.lr_schedule", label: "LR schedule", group: "training", kind: "enum", options: ["constant", "cosine"] },
  { path: "model.warmup_steps", label: "Warm-up steps", group: "training", kind: "int", min: 0 },
  { path: "model.grad_clip", label: "Gradient clip", group: "training", kind: "floatOrNull", help: "empty = off" },
  { path: "model.precision", label: "Precision", group: "training", kind: "enum", options: ["fp32", "bf16", "fp16"] },
  { path: "model.use_ema", label: "EMA weights", group: "training", kind: "bool" },
  { path: "model.ema_decay", label: "EMA decay", group: "training", kind: "float" },
  { path: "model.freq_metrics", label: "Metrics every (steps)", group: "training", kind: "int", min: 1 },
  { path: "model.freq_checkpoint", label: "Checkpoint every (steps)", group: "training", kind: "int", min: 1 },
  { path: "model.keep_checkpoints", label: "Checkpoints kept", group: "training", kind: "int", min: 1 },
  { path: "model.metric_samples", label: "Samples per metric step", group: "training", kind: "int", min: 0 },
  { path: "model.metric_sampler", label: "Metric sampler", group: "training", kind: "enum", options: ["dpmpp2m", "ddim", "ddpm"] },
  { path: "model.metric_steps", label: "Metric sampler steps", group: "training", kind: "int", min: 1 },

  { path: "dataset.name", label: "Dataset type", group: "data", kind: "enum", options: ["volume3d", "image2d"] },
  { path: "dataset.path", label: "Dataset path", group: "data", kind: "string", help: "set by the server from the chosen dataset" },
  { path: "dataset.image_size", label: "Image size", group: "data", kind: "int", min: 4, help: "side after resizing" },
  { path: "dataset.image_channels", label: "Image channels", group: "data", kind: "int", min: 1 },
  { path: "dataset.batch_size", label: "Batch size", group: "data", kind: "int", min: 1 },
  { path: "dataset.grad_accumulation", label: "Gradient accumulation", group: "data", kind: "int", min: 1 },
  { path: "dataset.num_workers", label: "Loader workers", group: "data", kind: "int", min: 0 },
  { path: "dataset.pin_memory", label: "Pin memory", group: "data", kind: "bool" },
  { path: "dataset.cache", label: "Cache preprocessed data", group: "data", kind: "bool" },
  { path: "dataset.clip_percentiles", label: "Clip percentiles", group: "data", kind: "pairOrNull", help: "low, high; empty = min/max" },
  { path: "dataset.intensity.window", label: "Intensity window", group: "data", kind: "pairOrNull", help: "low, high (e.g. CT -1000, 400); empty = percentiles" },
  { path: "dataset.flip", label: "Random flips", group: "data", kind: "bool" },
  { path: "dataset.keep_aspect", label: "Keep aspect", group: "data", kind: "bool" },
  { path: "dataset.val_fraction", label: "Validation fraction", group: "data", kind: "float", min: 0, max: 0.99 },
];

/** Paths errors can attach to: the fields plus the job's own "device" and "dataset_id". */
export const FIELD_PATHS = [...FIELDS.map((f) => f.path), "device", "dataset_id"];

export function fieldId(path: string): string {
  return "cfg-" + path.replace(/\./g, "-");
}

/** Text shown in an input for a config value. */
export function toInput(kind: FieldKind, value: unknown): string {
  if (value === null || value === undefined) return kind === "attnRes" ? "" : "";
  if (kind === "attnRes" && Array.isArray(value) && value.length === 0) return "none";
  if (Array.isArray(value)) return value.join(", ");
  return String(value);
}

export type Parsed = { ok: true; value: unknown } | { ok: false; error: string };

function parseNumbers(text: string, integer: boolean): number[] | null {
  const parts = text.split(/[,\s]+/).filter(Boolean);
  const nums = parts.map(Number);
  if (nums.some((n) => !Number.isFinite(n) || (integer && !Number.isInteger(n)))) return null;
  return nums;
}

/** Parse an input's text back to a config value, or say why it cannot be. */
export function fromInput(kind: FieldKind, text: string): Parsed {
  const t = text.trim();
  switch (kind) {
    case "int":
    case "float": {
      if (t === "") return { ok: false, error: "required" };
      const n = Number(t);
      if (!Number.isFinite(n)) return { ok: false, error: "must be a number" };
      if (kind === "int" && !Number.isInteger(n)) return { ok: false, error: "must be a whole number" };
      return { ok: true, value: n };
    }
    case "intOrNull":
    case "floatOrNull": {
      if (t === "") return { ok: true, value: null };
      return fromInput(kind === "intOrNull" ? "int" : "float", t);
    }
    case "intList": {
      const nums = parseNumbers(t, true);
      if (!nums || nums.length === 0) return { ok: false, error: "whole numbers separated by commas" };
      return { ok: true, value: nums };
    }
    case "attnRes": {
      if (t === "") return { ok: true, value: null };
      if (t.toLowerCase() === "none") return { ok: true, value: [] };
      const nums = parseNumbers(t, true);
      return nums ? { ok: true, value: nums } : { ok: false, error: "sides separated by commas, empty or none" };
    }
    case "pairOrNull": {
      if (t === "") return { ok: true, value: null };
      const nums = parseNumbers(t, false);
      if (!nums || nums.length !== 2) return { ok: false, error: "two numbers: low, high" };
      return { ok: true, value: nums };
    }
    default:
      return { ok: true, value: text };
  }
}
