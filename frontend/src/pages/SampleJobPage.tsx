// The samples of one sample job: 3D volumes in the page's NiiVue viewer (multiplanar or 3D
// render), 2D images as a grid; each downloadable.
import { useEffect, useState } from "react";
import { api } from "../api/endpoints";
import type { SampleOut as Sample } from "../api/schema.gen";
import { isTerminal } from "../lib/job";
import { AuthImage, DownloadLink } from "../components/AuthMedia";
import { JobActions } from "../components/JobActions";
import { JobFailure } from "../components/JobStats";
import { sampleParamsText } from "../components/ConfigSummary";
import { ErrorBox } from "../components/Notice";
import { ProgressBar } from "../components/ProgressBar";
import { StatusBadge } from "../components/StatusBadge";
import { LazyViewer } from "../components/LazyViewer";
import type { VolumeSource } from "../components/VolumeViewer";
import { useLoad } from "../lib/hooks";
import { Link } from "../lib/router";
import { sampleIs3d } from "../lib/sampleKind";
import { useJobLive } from "../lib/useJobLive";

export function SampleJobPage({ id }: { id: number }) {
  const live = useJobLive(id);
  const job = live.job;
  const sourceId = job?.source_job_id ?? null;
  const samples = useLoad<Sample[]>(() => api.samples(id), [id, live.samplesVersion, job?.status]);
  const [selected, setSelected] = useState<Sample | null>(null);
  const list = [...(samples.data ?? [])].sort((a, b) => a.index - b.index);
  const volumes = list.filter((s) => sampleIs3d(s));
  const images = list.filter((s) => !sampleIs3d(s));

  useEffect(() => {
    if (!selected && volumes.length) setSelected(volumes[0]);
  }, [volumes.length, selected]);

  if (!job) return <div className="page muted">Loading sample job {id}…</div>;
  const volUrl = (s: Sample) => s.volume_url ?? "";
  // NiiVue reads the format from the name's extension; the user never sees this name
  const viewerSource: VolumeSource | null = selected ? { url: volUrl(selected), name: `sample-${selected.index}.nii.gz`, title: `sample ${selected.index}` } : null;

  return (
    <div className="page">
      <header className="page-head">
        <h1>Sample job #{job.id}</h1>
        <StatusBadge status={job.status} />
        <div className="spacer" />
        {sourceId != null && <Link to={`/jobs/${sourceId}`}>model: train #{String(sourceId)}</Link>}
      </header>
      <JobFailure error={job.error} />
      {!isTerminal(job.status) && (
        <section className="card">
          <ProgressBar label="Sampling progress" fraction={job.progress?.fraction ?? 0} text={job.progress ? `step ${job.progress.step} / ${job.progress.total}` : job.status} />
        </section>
      )}
      <section className="card row wrap">
        <span className="muted" data-testid="sample-params">
          {sampleParamsText(job.config)}
        </span>
        <div className="spacer" />
        <JobActions job={job} onChange={() => void live.refresh()} />
      </section>
      <ErrorBox error={samples.error} />
      {volumes.length > 0 && (
        <div className="split">
          <section className="card">
            <h2>Volumes</h2>
            <ul className="sample-list" aria-label="Sample volumes">
              {volumes.map((s) => (
                <li key={s.id} className={selected?.id === s.id ? "selected" : ""}>
                  <button type="button" className="linklike" aria-label={`View sample ${s.index}`} onClick={() => setSelected(s)}>
                    Sample {s.index}
                  </button>
                  <span className="muted small">{s.shape?.join("×")}</span>
                  <DownloadLink className="button small" href={volUrl(s)} label={`Download sample ${s.index}`} />
                </li>
              ))}
            </ul>
          </section>
          <section className="card">
            <LazyViewer source={viewerSource} />
          </section>
        </div>
      )}
      {images.length > 0 && (
        <section className="card">
          <h2>Images</h2>
          <div className="gallery" aria-label="Sample images">
            {images.map((s) => (
              <figure key={s.id} className="thumb">
                <AuthImage src={s.preview_url ?? ""} alt={`sample ${s.index}`} />
                <figcaption>
                  #{s.index}{" "}
                  {(s.volume_url || s.preview_url) && (
                    <DownloadLink className="small" href={s.volume_url ?? (s.preview_url as string)} label={`Download sample ${s.index}`} />
                  )}
                </figcaption>
              </figure>
            ))}
          </div>
        </section>
      )}
      {list.length === 0 && isTerminal(job.status) && <p className="muted">This job produced no samples.</p>}
    </div>
  );
}
