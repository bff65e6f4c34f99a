// Cancel / resume / delete buttons and the checkpoint download for one job.
import { useState } from "react";
import { api } from "../api/endpoints";
import type { Job } from "../lib/job";
import { navigate } from "../lib/router";
import { DownloadLink } from "./AuthMedia";
import { ErrorBox } from "./Notice";

export function JobActions({ job, onChange }: { job: Job; onChange: () => void }) {
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const act = async (fn: () => Promise<unknown>, after?: () => void) => {
    setBusy(true);
    setError(null);
    try {
      await fn();
      after ? after() : onChange();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const s = job.status;
  return (
    <div className="job-actions">
      <div className="row wrap">
        {(s === "queued" || s === "running") && (
          <button type="button" disabled={busy} onClick={() => act(() => api.cancelJob(job.id))}>
            Cancel job
          </button>
        )}
        {(s === "cancelled" || s === "failed") && job.kind !== "sample" && (
          <button type="button" disabled={busy} onClick={() => act(() => api.resumeJob(job.id))}>
            Resume job
          </button>
        )}
        {job.kind === "train" && (s === "succeeded" || s === "cancelled") && (
          <DownloadLink href={api.checkpointUrl(job.id)} label="Download checkpoint" />
        )}
        {job.kind === "finetune" && s === "succeeded" && <DownloadLink href={api.checkpointUrl(job.id)} label="Download segmenter" />}
        {job.kind === "train" && (s === "succeeded" || (s === "cancelled" && job.checkpoint_step != null)) && (
          <button type="button" className="primary" onClick={() => navigate(`/samples?source=${job.id}`)}>
            Sample from this model
          </button>
        )}
        {job.kind === "train" && s === "succeeded" && (
          <button type="button" onClick={() => navigate(`/jobs/finetune?source=${job.id}`)}>
            Fine-tune
          </button>
        )}
        {(s === "succeeded" || s === "failed" || s === "cancelled") && (
          <button
            type="button"
            className="danger"
            disabled={busy}
            onClick={() => confirm(`Delete job ${job.id} and its files?`) && act(() => api.deleteJob(job.id), () => navigate(job.kind === "sample" ? "/samples" : "/jobs"))}
          >
            Delete job
          </button>
        )}
      </div>
      <ErrorBox error={error} />
    </div>
  );
}
