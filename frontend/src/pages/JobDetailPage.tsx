// A training job live: progress, it/s, ETA, loss chart fed by SSE, previews at metric
// steps, actions, the log.
import { api } from "../api/endpoints";
import type { SampleOut } from "../api/schema.gen";
import { isTerminal } from "../lib/job";
import { JobActions } from "../components/JobActions";
import { ConfigSummary } from "../components/ConfigSummary";
import { LatestMetrics } from "../components/LatestMetrics";
import { JobLog } from "../components/JobLog";
import { LossChart } from "../components/LossChart";
import { ErrorBox } from "../components/Notice";
import { FinetuneJobPage } from "./FinetuneJobPage";
import { ProgressBar } from "../components/ProgressBar";
import { RunFacts } from "../components/RunFacts";
import { SampleGallery } from "../components/SampleGallery";
import { StatusBadge } from "../components/StatusBadge";
import { lossRows } from "../lib/chartData";
import { formatDuration, formatNumber, formatRate, formatTime } from "../lib/format";
import { useLoad } from "../lib/hooks";
import { Link } from "../lib/router";
import { useJobLive } from "../lib/useJobLive";

export function JobDetailPage({ id }: { id: number }) {
  const live = useJobLive(id);
  const job = live.job;
  const samples = useLoad<SampleOut[]>(() => api.samples(id).catch(() => []), [id, live.samplesVersion, job?.status]);
  if (!job) return <div className="page muted">Loading job {id}…</div>;
  if (job.kind === "finetune" || job.kind === "study") return <FinetuneJobPage live={live} />;
  const p = job.progress;
  const lm = job.last_metrics;
  const fraction = p?.fraction ?? (job.status === "succeeded" ? 1 : 0);
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
      {job.error && (
        <div className="notice notice-error" role="alert">
          <strong>Failed:</strong> {job.error}
        </div>
      )}
      <section className="card">
        <ProgressBar label="Training progress" fraction={fraction} text={p ? `step ${p.step} / ${p.total}` : job.status} />
        <RunFacts live={live} />
        <dl className="stats">
          <div>
            <dt>Step</dt>
            <dd data-testid="job-step">{p ? `${p.step} / ${p.total}` : "—"}</dd>
          </div>
          <div>
            <dt>Speed</dt>
            <dd>{formatRate(live.itPerS)}</dd>
          </div>
          <div>
            <dt>ETA</dt>
            <dd>{isTerminal(job.status) ? "—" : formatDuration(live.eta)}</dd>
          </div>
          <div>
            <dt>Loss</dt>
            <dd>{formatNumber(lm?.train_loss)}</dd>
          </div>
          <div>
            <dt>LR</dt>
            <dd>{formatNumber(lm?.lr)}</dd>
          </div>
          <div>
            <dt title="processes the job runs as: one per GPU, or CPU processes on a CPU worker">World size</dt>
            <dd data-testid="job-world-size">{live.runInfo?.world_size ?? job.gpus}</dd>
          </div>
          <div>
            <dt>Worker</dt>
            <dd>{job.worker ?? "—"}</dd>
          </div>
          <div>
            <dt>Started</dt>
            <dd>{formatTime(job.started_at)}</dd>
          </div>
        </dl>
        <JobActions job={job} onChange={() => void live.refresh()} />
      </section>
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
