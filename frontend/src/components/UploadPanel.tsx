// Upload a folder: pick it (webkitdirectory) or drop it, send files a few at a time with one
// overall progress bar, list failures with the server's reason, retry, cancel, remove single
// files (a stray one the commit names), commit.
import { useEffect, useRef, useState, type DragEvent } from "react";
import { api } from "../api/endpoints";
import { ApiError } from "../api/client";
import type { DatasetOut, ErrorResponse, FileOut } from "../api/schema.gen";
import { fromDataTransfer, fromFileList, topFolder, type PickedFile } from "../lib/folderDrop";
import { formatBytes } from "../lib/format";
import { UploadQueue, isHiddenPath } from "../lib/uploadQueue";
import { xhrSender } from "../lib/xhrUpload";
import { navigate } from "../lib/router";
import { ProgressBar } from "./ProgressBar";
import { ErrorBox } from "./Notice";

const CONCURRENCY = 4;

/** The server's reason usually starts with the file's path, already shown beside it. */
function withoutPath(msg: string, path: string): string {
  return msg.startsWith(path) ? msg.slice(path.length).replace(/^[:\s]+/, "") : msg;
}

/** The commit's refusal as lines, each with the dataset path it names (loc "files/<path>"). */
function commitProblems(detail: ErrorResponse["detail"]): Array<{ path: string | null; msg: string }> {
  if (typeof detail === "string") return [{ path: null, msg: detail }];
  return detail.map((d) => ({ path: d.loc.startsWith("files/") ? d.loc.slice("files/".length) : null, msg: d.msg }));
}

function useQueueRender(queue: UploadQueue | null): number {
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (!queue) return;
    let raf = 0;
    const unsub = queue.subscribe(() => {
      if (!raf) raf = requestAnimationFrame(() => ((raf = 0), setTick((t) => t + 1)));
    });
    return () => {
      unsub();
      if (raf) cancelAnimationFrame(raf);
    };
  }, [queue]);
  return tick;
}

export function UploadPanel({ onChanged }: { onChanged: () => void }) {
  const [name, setName] = useState("");
  const [picked, setPicked] = useState<PickedFile[]>([]);
  const [skipped, setSkipped] = useState(0);
  const [dataset, setDataset] = useState<DatasetOut | null>(null);
  const [queue, setQueue] = useState<UploadQueue | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [commitErrors, setCommitErrors] = useState<Array<{ path: string | null; msg: string }>>([]);
  const [dragOver, setDragOver] = useState(false);
  const [busy, setBusy] = useState(false);
  const inputRef = useRef<HTMLInputElement>(null);
  useQueueRender(queue);

  const choose = (files: PickedFile[]) => {
    const keep = files.filter((f) => !isHiddenPath(f.path));
    setSkipped(files.length - keep.length);
    setPicked(keep);
    setError(null);
    setCommitErrors([]);
    if (!name) setName(topFolder(keep) || "dataset");
  };

  const onDrop = async (e: DragEvent) => {
    e.preventDefault();
    setDragOver(false);
    if (queue) return;
    choose(await fromDataTransfer(e.dataTransfer));
  };

  const start = async () => {
    setBusy(true);
    setError(null);
    try {
      const ds = dataset ?? (await api.createDataset(name.trim() || "dataset"));
      setDataset(ds);
      const q = new UploadQueue(xhrSender(ds.id), CONCURRENCY);
      q.add(picked);
      setQueue(q);
      onChanged();
      await q.start();
      onChanged(); // the list's file count and size
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  const commit = async () => {
    if (!dataset) return;
    setBusy(true);
    setCommitErrors([]);
    try {
      await api.commitDataset(dataset.id);
      onChanged();
      navigate(`/datasets/${dataset.id}`);
    } catch (e) {
      if (e instanceof ApiError) setCommitErrors(commitProblems(e.detail));
      else setError(e);
    } finally {
      setBusy(false);
    }
  };

  /** Remove an uploaded file from the dataset (and the queue), so the rest can be committed. */
  const removeFile = async (path: string) => {
    const item = queue?.items.find((i) => i.path === path);
    const fileId = (item?.result as FileOut | null)?.id;
    if (!dataset || !queue) return;
    setError(null);
    try {
      if (item?.state === "done" && fileId !== undefined) await api.deleteDatasetFile(dataset.id, fileId);
      queue.remove(path);
      setCommitErrors((errs) => errs.filter((c) => c.path !== path));
      onChanged();
    } catch (e) {
      setError(e);
    }
  };

  const reset = () => {
    queue?.cancel();
    setQueue(null);
    setDataset(null);
    setPicked([]);
    setName("");
    setCommitErrors([]);
    if (inputRef.current) inputRef.current.value = "";
  };

  const s = queue?.summary();
  const failed = queue?.items.filter((i) => i.state === "failed") ?? [];
  const active = queue?.items.filter((i) => i.state === "uploading") ?? [];
  const done = queue?.items.filter((i) => i.state === "done") ?? [];
  const totalPicked = picked.reduce((a, f) => a + f.file.size, 0);
  const dirAttrs = { webkitdirectory: "", directory: "" } as Record<string, string>;

  return (
    <section className="card upload" aria-label="Upload a dataset">
      <h2>Upload a folder</h2>
      {!queue && (
        <>
          <div
            className={`dropzone${dragOver ? " over" : ""}`}
            role="group"
            aria-label="Drop a folder here"
            onDragOver={(e) => {
              e.preventDefault();
              setDragOver(true);
            }}
            onDragLeave={() => setDragOver(false)}
            onDrop={onDrop}
          >
            <p>Drop a folder of NIfTI volumes (.nii, .nii.gz, .npy) or 2D images (.png, .jpg, .tif) here, or</p>
            <label className="button" htmlFor="folder-input">
              Choose folder…
            </label>
            <input id="folder-input" ref={inputRef} className="visually-hidden" type="file" multiple aria-label="Choose folder" {...dirAttrs} onChange={(e) => e.target.files && choose(fromFileList(e.target.files))} />
          </div>
          {picked.length > 0 && (
            <div className="row wrap">
              <label className="inline">
                Dataset name
                <input aria-label="Dataset name" value={name} onChange={(e) => setName(e.target.value)} />
              </label>
              <span className="muted">
                {picked.length} files, {formatBytes(totalPicked)}
                {skipped > 0 && ` (${skipped} hidden files skipped)`}
              </span>
              <button type="button" className="primary" onClick={start} disabled={busy}>
                Start upload
              </button>
            </div>
          )}
        </>
      )}
      {queue && s && (
        <div className="upload-status">
          <div className="muted">
            Dataset <strong>{dataset?.name}</strong>
          </div>
          <ProgressBar
            label="Upload progress"
            fraction={s.fraction}
            text={`${s.filesDone} / ${s.filesTotal} files · ${formatBytes(s.bytesDone)} / ${formatBytes(s.bytesTotal)}${s.filesFailed ? ` · ${s.filesFailed} failed` : ""}`}
          />
          {active.length > 0 && <div className="muted small">Sending {active.map((a) => a.path).join(", ")}</div>}
          {failed.length > 0 && (
            <div className="notice notice-error" role="alert" aria-label="Failed files">
              <strong>{failed.length} file(s) were refused:</strong>
              <ul className="failed-files">
                {failed.map((f) => (
                  <li key={f.path}>
                    <code>{f.path}</code>: {withoutPath(f.error ?? "", f.path)}
                  </li>
                ))}
              </ul>
            </div>
          )}
          {commitErrors.length > 0 && (
            <div className="notice notice-error" role="alert" aria-label="Commit errors">
              <strong>The dataset cannot be committed:</strong>
              <ul>
                {commitErrors.map((c, i) => (
                  <li key={i}>
                    {c.msg}
                    {c.path && done.some((d) => d.path === c.path) && (
                      <button type="button" className="small" aria-label={`Remove ${c.path}`} onClick={() => void removeFile(c.path!)}>
                        Remove
                      </button>
                    )}
                  </li>
                ))}
              </ul>
            </div>
          )}
          {done.length > 0 && (
            <details className="uploaded-files">
              <summary>Uploaded files ({done.length})</summary>
              <ul aria-label="Uploaded files">
                {done.map((d) => (
                  <li key={d.path}>
                    <code>{d.path}</code>{" "}
                    <button type="button" className="small" aria-label={`Remove ${d.path}`} onClick={() => void removeFile(d.path)}>
                      Remove
                    </button>
                  </li>
                ))}
              </ul>
            </details>
          )}
          <div className="row wrap">
            {s.running && (
              <button type="button" onClick={() => queue.cancel()}>
                Cancel upload
              </button>
            )}
            {s.finished && queue.canRetry() && (
              <button type="button" onClick={() => void queue.retryFailed().then(onChanged)}>
                Retry failed
              </button>
            )}
            {s.finished && (
              <button type="button" className="primary" onClick={commit} disabled={busy || s.filesDone === 0}>
                Commit dataset
              </button>
            )}
            {s.finished && (
              <button type="button" onClick={reset}>
                Upload another folder
              </button>
            )}
          </div>
        </div>
      )}
      <ErrorBox error={error} title="Upload" />
    </section>
  );
}
