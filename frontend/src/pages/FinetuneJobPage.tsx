// A fine-tune or study job: live progress and held-out Dice (per class, coloured like the label
// overlay), then, for a fine-tune job, its evaluation and the predicted label maps of the
// evaluation cases over their images (NiiVue), each downloadable; for a study job, the
// label-efficiency chart (Dice against labelled cases, pretrained and scratch).
import { useEffect, useState } from "react";
import { api } from "../api/endpoints";
import type { Evaluation, FinetuneJobOut, PredictionOut, StudyJobOut, StudyOut } from "../api/schema.gen";
import { DownloadLink } from "../components/AuthMedia";
import { ConfigSummary } from "../components/ConfigSummary";
import { JobLog } from "../components/JobLog";
import { LabelOverlay2D } from "../components/LabelOverlay2D";
import { LazyViewer } from "../components/LazyViewer";
import { LossChart } from "../components/LossChart";
import { ErrorBox } from "../components/Notice";
import { JobFailure, JobStats } from "../components/JobStats";
import { StatusBadge } from "../components/StatusBadge";
import { StudyChart } from "../components/StudyChart";
import { diceSeries } from "../lib/finetune";
import { formatNumber } from "../lib/format";
import { useLoad } from "../lib/hooks";
import { isTerminal } from "../lib/job";
import { Link } from "../lib/router";
import type { useJobLive } from "../lib/useJobLive";

type Live = ReturnType<typeof useJobLive>;
type FtJob = FinetuneJobOut | StudyJobOut;

const pct = (v: number | null | undefined) => (v == null ? "—" : `${(100 * v).toFixed(1)}%`);

export function FinetuneJobPage({ live }: { live: Live }) {
  const job = live.job as FtJob;
  const dice = job.last_metrics?.val_dice as number | undefined;
  const title = job.kind === "study" ? "Study job" : "Fine-tune job";
  return (
    <div className="page">
      <header className="page-head">
        <h1>
          {title} #{job.id}
        </h1>
        <StatusBadge status={job.status} />
        <div className="spacer" />
        {job.source_job_id != null ? <Link to={`/jobs/${job.source_job_id}`}>from train job {String(job.source_job_id)}</Link> : <span className="muted">from scratch</span>}
        {job.dataset_id != null && <Link to={`/datasets/${job.dataset_id}`}>labelled dataset {String(job.dataset_id)}</Link>}
      </header>
      <JobFailure error={job.error} />
      <JobStats
        job={job}
        live={live}
        progressLabel="Fine-tune progress"
        kindStats={[
          { label: "Held-out Dice", value: formatNumber(dice), testId: "latest-dice" },
          { label: "Loss", value: formatNumber(job.last_metrics?.train_loss) },
          ...(job.kind === "study" ? [{ label: "Budgets × seeds", value: `${(job.labels ?? []).join(", ")} × ${job.seeds}` }] : []),
        ]}
      />
      <section className="card">
        <h2>Dice {job.kind === "study" ? "of each run (one after another)" : "on held-out cases"}</h2>
        <LossChart rows={live.metrics} series={diceSeries(live.metrics)} yLabel="Dice" name="Dice" />
      </section>
      {job.kind === "finetune" && job.status === "succeeded" && <Results job={job} />}
      {job.kind === "study" && <StudyResults job={job} version={`${job.status}-${live.metrics.length}`} />}
      <ConfigSummary config={job.config} />
      <JobLog jobId={job.id} live={!isTerminal(job.status)} version={job.status} />
    </div>
  );
}

function Results({ job }: { job: FinetuneJobOut }) {
  const evaluation = useLoad<Evaluation>(() => api.evaluation(job.id), [job.id]);
  const predictions = useLoad<PredictionOut[]>(() => api.predictions(job.id), [job.id]);
  const [chosen, setChosen] = useState<string | null>(null);
  const list = predictions.data ?? [];
  useEffect(() => {
    if (!chosen && list.length) setChosen(list[0].case);
  }, [list.length, chosen]);
  const current = list.find((x) => x.case === chosen) ?? null;
  const classes = Array.from({ length: job.config.task?.num_classes ?? 2 }, (_, k) => k);
  const is3d = job.config.is_3d ?? true;
  const e = evaluation.data;
  return (
    <>
      <section className="card" aria-label="Evaluation">
        <h2>Evaluation {job.eval_dataset_id != null ? `on dataset ${job.eval_dataset_id}` : "on the held-out cases"}</h2>
        <ErrorBox error={evaluation.error} />
        {e && (
          <>
            <p>
              Mean Dice <strong data-testid="mean-dice">{pct(e.mean_dice)}</strong> over {e.cases.length} case{e.cases.length === 1 ? "" : "s"}
            </p>
            <table className="table" aria-label="Dice per case">
              <thead>
                <tr>
                  <th>Case</th>
                  {Object.keys(e.per_class).map((k) => (
                    <th key={k}>class {k}</th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {e.cases.map((c) => (
                  <tr key={c.file}>
                    <td>{c.file}</td>
                    {Object.keys(e.per_class).map((k) => (
                      <td key={k}>{pct(c.dice[k])}</td>
                    ))}
                  </tr>
                ))}
                <tr>
                  <th>mean</th>
                  {Object.entries(e.per_class).map(([k, v]) => (
                    <th key={k}>{pct(v)}</th>
                  ))}
                </tr>
              </tbody>
            </table>
          </>
        )}
      </section>
      <section className="card" aria-label="Predictions">
        <h2>Predicted label maps</h2>
        <ErrorBox error={predictions.error} />
        <table className="table" aria-label="Prediction files">
          <tbody>
            {list.map((x) => (
              <tr key={x.case} className={x.case === chosen ? "selected" : undefined}>
                <td>
                  <button type="button" className="link" aria-pressed={x.case === chosen} onClick={() => setChosen(x.case)}>
                    {x.case}
                  </button>
                </td>
                <td>
                  <DownloadLink href={x.label_url} label="Download label map" />
                </td>
                <td>
                  <DownloadLink href={x.image_url} label="Download image" />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {current && is3d && (
          <LazyViewer
            source={{ url: current.image_url, name: `${current.case}.nii.gz`, title: current.case }}
            overlay={{ url: current.label_url, name: `${current.case}-prediction.nii.gz`, title: "the prediction", classes }}
          />
        )}
        {current && !is3d && (
          <LabelOverlay2D image={{ url: current.image_url, path: current.case }} label={{ url: current.label_url, path: "the prediction" }} classes={classes} />
        )}
      </section>
    </>
  );
}

function StudyResults({ job, version }: { job: StudyJobOut; version: string }) {
  const study = useLoad<StudyOut | null>(() => api.study(job.id).catch(() => null), [job.id, version]);
  const s = study.data;
  return (
    <section className="card" aria-label="Label efficiency">
      <h2>Label efficiency: pretrained against scratch</h2>
      {!s ? (
        <p className="muted">No finished runs yet.</p>
      ) : (
        <>
          <StudyChart study={s} />
          <table className="table" aria-label="Study summary">
            <thead>
              <tr>
                <th>Labelled cases</th>
                <th>Scratch Dice</th>
                <th>Pretrained Dice</th>
                <th>Gain</th>
              </tr>
            </thead>
            <tbody>
              {s.summary.map((r) => (
                <tr key={r.labelled_cases}>
                  <td>{r.labelled_cases}</td>
                  <td>
                    {pct(r.scratch.mean)}
                    {r.scratch.sd != null && ` ± ${pct(r.scratch.sd)}`}
                  </td>
                  <td>
                    {pct(r.pretrained.mean)}
                    {r.pretrained.sd != null && ` ± ${pct(r.pretrained.sd)}`}
                  </td>
                  <td>{r.gain == null ? "—" : `${(100 * r.gain).toFixed(1)} points`}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <p className="muted small">
            {s.runs.length} of {2 * s.budgets.length * s.seeds.length} runs finished.{" "}
            <DownloadLink href={api.studyPlotUrl(job.id)} label="Download study.png" className="link" />
          </p>
        </>
      )}
    </section>
  );
}
