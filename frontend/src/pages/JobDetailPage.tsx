// A training job live: progress, it/s, ETA, loss chart fed by SSE, previews at metric
// steps, actions, the log.
import { api } from "../api/endpoints";
import type { SampleOut } from "../api/schema.gen";
import { isTerminal } from "../lib/job";
import { ConfigSummary } from "../components/ConfigSummary";
import { LatestMetrics } from "../components/LatestMetrics";
import { JobLog } from "../components/JobLog";
import { LossChart } from "../components/LossChart";
import { ErrorBox } from "../components/Notice";
import { FinetuneJobPage } from "./FinetuneJobPage";
import { JobFailure, JobStats } from "../components/JobStats";
import { SampleGallery } from "../components/SampleGallery";
import { StatusBadge } from "../components/StatusBadge";
import { lossRows } from "../lib/chartData";
import { formatNumber } from "../lib/format";
import { useLoad } from "../lib/hooks";
import { Link } from "../lib/router";
import { useJobLive } from "../lib/useJobLive";

export function JobDetailPage({ id }: { id: number }) {
  const live = useJobLive(id);
  const job = live.job;
  const samples = useLoad<SampleOut[]>(() => api.samples(id).catch(() => []), [id, live.samplesVersion, job?.status]);
  if (!job) return <div className="page muted">Loading job {id}…</div>;
  if (job.kind === "finetune" || job.kind === "study") return <FinetuneJobPage live={live} />;
  const lm = job.last_metrics;
  return (
    <div className="page">
      <header className="page-head">
        <h1>
          {job.kind === "sample" ? "Sample job" : "Training job"} #{job.id}
        </h1>
        <StatusBadge status={job.status} />
        <span className={`live-dot${live.connected ? " on" : ""}`} title={live.connected ? "live updates connected" : "live updates reconnecting"} aria-label={live.connected ? "Live" : "Offline"} />
        <div className="spacer" />
        {job.dataset_id != null && <Link to={`/datasets/${job.dataset_id}`}>dataset {String(job.dataset_id)}</Link>}
      </header>
      <JobFailure error={job.error} />
      <JobStats
        job={job}
        live={live}
        progressLabel="Training progress"
        kindStats={[
          { label: "Loss", value: formatNumber(lm?.train_loss) },
          { label: "LR", value: formatNumber(lm?.lr) },
        ]}
      />
      <section className="card">
        <h2>Loss</h2>
        <LossChart rows={lossRows(live.metrics, live.loss)} />
      </section>
      <section className="card">
        <h2>Samples at metric steps</h2>
        <ErrorBox error={samples.error} />
        <SampleGallery samples={samples.data ?? []} />
      </section>
      <LatestMetrics row={job.last_metrics} />
      <ConfigSummary config={job.config} />
      <JobLog jobId={id} live={!isTerminal(job.status)} version={job.status} />
    </div>
  );
}
