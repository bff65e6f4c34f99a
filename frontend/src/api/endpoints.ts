// One function per REST route the app uses.
import { del, get, post } from "./client";
import type { Dataset, Device, Health, Job, MetricRow, Sample, WorkerInfo } from "./types";

const id = (v: string | number) => encodeURIComponent(String(v));

/** List endpoints may answer a bare array or {items: [...]}: accept both. */
function items<T>(v: unknown): T[] {
  if (Array.isArray(v)) return v as T[];
  if (v && typeof v === "object") {
    for (const k of ["items", "results", "data", "datasets", "jobs", "samples", "workers"]) {
      const x = (v as Record<string, unknown>)[k];
      if (Array.isArray(x)) return x as T[];
    }
  }
  return [];
}

export const api = {
  health: () => get<Health>("/api/health"),
  workers: async () => items<WorkerInfo>(await get<unknown>("/api/workers")),

  datasets: async () => items<Dataset>(await get<unknown>("/api/datasets")),
  dataset: (d: string | number) => get<Dataset>(`/api/datasets/${id(d)}`),
  createDataset: (name: string) => post<Dataset>("/api/datasets", { name }),
  commitDataset: (d: string | number) => post<Dataset>(`/api/datasets/${id(d)}/commit`),
  deleteDataset: (d: string | number) => del(`/api/datasets/${id(d)}`),
  datasetFileUrl: (d: string | number, f: string | number) => `/api/datasets/${id(d)}/files/${id(f)}`,

  jobs: async () => items<Job>(await get<unknown>("/api/jobs")),
  job: (j: string | number) => get<Job>(`/api/jobs/${id(j)}`),
  createTrainJob: (datasetId: string | number, config: unknown, device: Device) =>
    post<Job>("/api/jobs", { kind: "train", dataset_id: datasetId, config, device }),
  createSampleJob: (p: { source_job_id: string | number; num_samples: number; sampler: string; steps: number; seed: number; device?: Device }) =>
    post<Job>("/api/jobs", { kind: "sample", ...p }),
  metrics: async (j: string | number) => items<MetricRow>(await get<unknown>(`/api/jobs/${id(j)}/metrics`)),
  samples: async (j: string | number) => items<Sample>(await get<unknown>(`/api/jobs/${id(j)}/samples`)),
  cancelJob: (j: string | number) => post<unknown>(`/api/jobs/${id(j)}/cancel`),
  resumeJob: (j: string | number) => post<unknown>(`/api/jobs/${id(j)}/resume`),
  deleteJob: (j: string | number) => del(`/api/jobs/${id(j)}`),
  jobLogUrl: (j: string | number) => `/api/jobs/${id(j)}/log`,
  jobEventsUrl: (j: string | number) => `/api/jobs/${id(j)}/events`,
  checkpointUrl: (j: string | number) => `/api/jobs/${id(j)}/checkpoint`,
  sampleVolumeUrl: (s: string | number) => `/api/samples/${id(s)}/volume.nii.gz`,
  samplePreviewUrl: (s: string | number) => `/api/samples/${id(s)}/preview.png`,
};
