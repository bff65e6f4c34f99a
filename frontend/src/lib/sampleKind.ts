// Whether a sample is a 3D volume (NiiVue) or a 2D image (grid). The API says so: a 3D sample
// has a .nii.gz (`volume_url`), a 2D sample only its PNG (SampleOut in the OpenAPI document).
import type { SampleOut } from "../api/schema.gen";

export function sampleIs3d(sample: Pick<SampleOut, "volume_url">): boolean {
  return sample.volume_url !== null;
}
