// The training config as the engine's schema (ddpm/config.py) defines it.

export interface ScheduleConfig {
  schedule: "linear" | "cosine" | "sigmoid" | "quadratic";
  n_timestep: number;
  linear_start: number;
  linear_end: number;
}

export interface TrainConfig {
  gpu: number;
  experiment_path: string;
  is_3d: boolean;
  seed: number;
  model: {
    unet: {
      dim: number;
      channel_mults: number[];
      res_blocks: number;
      attn_res: number[] | null;
      num_head_channels: number;
      self_condition: boolean;
      dropout: number;
      linear_attn: boolean;
      checkpointing: boolean;
    };
    beta_schedule: { train: ScheduleConfig; test?: ScheduleConfig | null };
    lr: number;
    optimizer: "adam" | "adamw";
    weight_decay: number;
    loss_type: "l1" | "l2" | "huber";
    objective: "pred_noise" | "pred_x0" | "pred_v";
    use_ema: boolean;
    ema_decay: number;
    iterations: number;
    freq_metrics: number;
    freq_checkpoint: number;
    keep_checkpoints: number;
    warmup_steps: number;
    lr_schedule: "constant" | "cosine";
    grad_clip: number | null;
    precision: "fp32" | "bf16" | "fp16";
    min_snr_gamma: number | null;
    metric_samples: number;
    metric_sampler: "ddpm" | "ddim" | "dpmpp2m";
    metric_steps: number;
  };
  dataset: {
    name: "volume3d" | "image2d";
    path: string;
    image_size: number;
    image_channels: number;
    batch_size: number;
    grad_accumulation: number;
    num_workers: number;
    pin_memory: boolean;
    cache: boolean;
    clip_percentiles: number[] | null;
    intensity: { window: number[] } | null;
    flip: boolean;
    keep_aspect: boolean;
    val_fraction: number;
  };
}
