// The job's device choice (the API's "device": auto | cpu | gpu) and what the live workers offer.
import type { WorkerOut } from "../api/schema.gen";
import type { Device } from "./job";

export const DEVICE_CHOICES: Array<{ value: Device; label: string }> = [
  { value: "auto", label: "Auto (GPU when a GPU worker is up)" },
  { value: "cpu", label: "CPU" },
  { value: "gpu", label: "GPU" },
];

/** Distinct devices of the live workers, GPUs first: ["cuda:0", "cpu"]. */
export function liveDevices(workers: Pick<WorkerOut, "device">[]): string[] {
  const set = new Set(workers.map((w) => String(w.device ?? "").toLowerCase()).filter(Boolean));
  return [...set].sort((a, b) => Number(a === "cpu") - Number(b === "cpu") || a.localeCompare(b));
}
