// Whether a sample is a 3D volume (NiiVue) or a 2D image (grid): the source job's config
// says so; without it, the sample's shape decides (C,D,H,W or D,H,W with D > 1).
import type { Job, Sample } from "../api/types";

export function jobIs3d(job: Job | null | undefined): boolean | null {
  const cfg = job?.config as { is_3d?: unknown } | null | undefined;
  return typeof cfg?.is_3d === "boolean" ? cfg.is_3d : null;
}

export function sampleIs3d(sample: Sample, is3d: boolean | null = null): boolean {
  if (is3d !== null) return is3d;
  // the API gives 3D samples a .nii.gz and 2D samples only their PNG
  if (sample.volume_url) return true;
  if (sample.volume_url === null && sample.preview_url) return false;
  const shape = sample.shape ?? [];
  if (shape.length >= 4) return shape.slice(-3).every((d) => d > 1);
  if (shape.length === 3) return shape[0] > 4; // (C,H,W) with few channels is an image
  return false;
}
