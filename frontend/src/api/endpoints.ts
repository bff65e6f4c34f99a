// One function per REST route the app uses, typed by the generated `paths` (schema.gen.ts).
import { must, rest, routeUrl } from "./client";
import type { ConfigCheckRequest, DeviceChoice, FinetuneJobCreate, SampleJobCreate, StudyJobCreate, TrainJobCreate } from "./schema.gen";

const jobPath = (job_id: number) => ({ params: { path: { job_id } } });
const datasetPath = (dataset_id: number) => ({ params: { path: { dataset_id } } });

export type TrainJobRequest = Omit<TrainJobCreate, "kind">;
export type SampleJobRequest = Omit<SampleJobCreate, "kind">;
export type FinetuneJobRequest = Omit<FinetuneJobCreate, "kind">;
export type StudyJobRequest = Omit<StudyJobCreate, "kind">;

export const api = {
  health: () => must(rest.GET("/api/health")),
  workers: () => must(rest.GET("/api/workers")),

  datasets: () => must(rest.GET("/api/datasets")),
  dataset: (id: number) => must(rest.GET("/api/datasets/{dataset_id}", datasetPath(id))),
  createDataset: (name: string) => must(rest.POST("/api/datasets", { body: { name } })),
  commitDataset: (id: number) => must(rest.POST("/api/datasets/{dataset_id}/commit", datasetPath(id))),
  deleteDataset: (id: number) => must(rest.DELETE("/api/datasets/{dataset_id}", datasetPath(id))),
  deleteDatasetFile: (id: number, fileId: number) =>
    must(rest.DELETE("/api/datasets/{dataset_id}/files/{file_id}", { params: { path: { dataset_id: id, file_id: fileId } } })),

  jobs: () => must(rest.GET("/api/jobs")),
  job: (id: number) => must(rest.GET("/api/jobs/{job_id}", jobPath(id))),
  createTrainJob: (req: TrainJobRequest) => must(rest.POST("/api/jobs", { body: { kind: "train", ...req } })),
  createSampleJob: (req: SampleJobRequest) => must(rest.POST("/api/jobs", { body: { kind: "sample", ...req } })),
  createFinetuneJob: (req: FinetuneJobRequest) => must(rest.POST("/api/jobs", { body: { kind: "finetune", ...req } })),
  createStudyJob: (req: StudyJobRequest) => must(rest.POST("/api/jobs", { body: { kind: "study", ...req } })),
  finetuneConfig: (trainJobId: number) => must(rest.GET("/api/jobs/{job_id}/finetune-config", jobPath(trainJobId))),
  evaluation: (id: number) => must(rest.GET("/api/jobs/{job_id}/evaluation", jobPath(id))),
  predictions: (id: number) => must(rest.GET("/api/jobs/{job_id}/predictions", jobPath(id))),
  study: (id: number) => must(rest.GET("/api/jobs/{job_id}/study", jobPath(id))),
  metrics: (id: number) => must(rest.GET("/api/jobs/{job_id}/metrics", jobPath(id))),
  samples: (id: number) => must(rest.GET("/api/jobs/{job_id}/samples", jobPath(id))),
  live: (id: number) => must(rest.GET("/api/jobs/{job_id}/live", jobPath(id))),
  cancelJob: (id: number) => must(rest.POST("/api/jobs/{job_id}/cancel", jobPath(id))),
  resumeJob: (id: number) => must(rest.POST("/api/jobs/{job_id}/resume", jobPath(id))),
  deleteJob: (id: number) => must(rest.DELETE("/api/jobs/{job_id}", jobPath(id))),

  configSchema: () => must(rest.GET("/api/config/schema")),
  configPresets: () => must(rest.GET("/api/config/presets")),
  checkConfig: (kind: string, config: unknown, signal?: AbortSignal, device: DeviceChoice = "auto") =>
    must(rest.POST("/api/config/check", { body: { kind, config, device } as ConfigCheckRequest, signal })),

  jobLogUrl: (id: number) => routeUrl("/api/jobs/{job_id}/log", { job_id: id }),
  jobEventsUrl: (id: number) => routeUrl("/api/jobs/{job_id}/events", { job_id: id }),
  studyPlotUrl: (id: number) => routeUrl("/api/jobs/{job_id}/study.png", { job_id: id }),
  checkpointUrl: (id: number) => routeUrl("/api/jobs/{job_id}/checkpoint", { job_id: id }),
};
