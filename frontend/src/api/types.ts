// Shapes of the REST resources (see DESIGN.md "REST contract"). Optional fields are ones
// the contract leaves open; the UI copes without them.

export interface DatasetFile {
  id: number | string;
  path: string;
  url?: string;
  format?: string;
  channels?: number;
  shape: number[] | null;
  spacing: number[] | null;
  dtype: string | null;
  size_bytes: number;
  kind?: string | null;
}

export interface Dataset {
  id: number | string;
  name: string;
  status: string; // uploading | ready
  kind: "3d" | "2d" | null;
  channels?: number | null;
  files?: DatasetFile[];
  file_count?: number;
  total_bytes?: number;
  created_at?: string;
  [k: string]: unknown;
}

export type JobStatus = "queued" | "running" | "succeeded" | "failed" | "cancelled";

export interface JobProgress {
  step: number;
  total: number;
  fraction: number;
  eta_s: number | null;
  [k: string]: unknown;
}

export interface Job {
  id: number | string;
  kind: "train" | "sample";
  status: JobStatus;
  progress: JobProgress | null;
  last_metrics: Record<string, unknown> | null;
  error: string | null;
  dataset_id?: number | string | null;
  source_job_id?: number | string | null;
  config?: Record<string, unknown> | null;
  params?: Record<string, unknown> | null;
  name?: string | null;
  worker?: string | null;
  checkpoint_step?: number | null;
  created_at?: string | null;
  started_at?: string | null;
  finished_at?: string | null;
  [k: string]: unknown;
}

export interface MetricRow {
  step: number;
  loss?: number;
  lr?: number;
  [k: string]: unknown;
}

export interface Sample {
  id: number | string;
  index: number;
  shape: number[] | null;
  volume_url: string | null;
  preview_url: string | null;
  step?: number | null;
  [k: string]: unknown;
}

export interface WorkerInfo {
  name: string;
  queues?: string[];
  device?: string | null;
  current_job?: number | string | null;
  [k: string]: unknown;
}

export interface Health {
  status: string;
  database?: string;
  broker?: string;
  workers?: number;
}

export type Device = "auto" | "cpu" | "gpu";

export const TERMINAL: JobStatus[] = ["succeeded", "failed", "cancelled"];

export function isTerminal(s: string | null | undefined): boolean {
  return TERMINAL.includes(s as JobStatus);
}
