// A job as the API sends it (generated from its OpenAPI description), and which statuses end it.
import type { DeviceChoice, FinetuneJobOut, JobStatus, SampleJobOut, StudyJobOut, TrainJobOut } from "../api/schema.gen";

export type Job = TrainJobOut | SampleJobOut | FinetuneJobOut | StudyJobOut;
export type Device = DeviceChoice;

// A job in one of these never changes again (the backend's state table has no way out of them);
// typed against the generated enum, so a renamed status fails to compile here.
const TERMINAL: ReadonlySet<JobStatus> = new Set<JobStatus>(["succeeded", "failed", "cancelled"]);

export function isTerminal(s: JobStatus | null | undefined): boolean {
  return s != null && TERMINAL.has(s);
}
