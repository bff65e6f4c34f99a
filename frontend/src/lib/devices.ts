// The job's device choice (the API's "device": auto | cpu | gpu) and what the live workers offer.
import type { WorkerOut } from "../api/schema.gen";
import type { Device } from "./job";

export const DEVICE_CHOICES: Array<{ value: Device; label: string }> = [
  { value: "auto", label: "Auto (GPU when a GPU worker is up)" },
  { value: "cpu", label: "CPU" },
  { value: "gpu", label: "GPU" },
];

/** The hardware the live workers have, as config fields' ``requires`` names it ("gpu"). */
export function liveHardware(workers: Pick<WorkerOut, "device">[]): Set<string> {
  return new Set(liveDevices(workers).some((d) => d !== "cpu") ? ["gpu"] : []);
}

/** Distinct devices of the live workers, GPUs first: ["cuda:0", "cpu"]. */
export function liveDevices(workers: Pick<WorkerOut, "device">[]): string[] {
  const set = new Set(workers.map((w) => String(w.device ?? "").toLowerCase()).filter(Boolean));
  return [...set].sort((a, b) => Number(a === "cpu") - Number(b === "cpu") || a.localeCompare(b));
}
