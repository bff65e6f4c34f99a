// Upload a folder: pick it (webkitdirectory) or drop it, send files a few at a time with one
// overall progress bar, list failures with the server's reason, retry, cancel, commit.
import { useEffect, useRef, useState, type DragEvent } from "react";
import { api } from "../api/endpoints";
import { ApiError } from "../api/client";
import type { DatasetOut } from "../api/schema.gen";
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
  const [commitErrors, setCommitErrors] = useState<string[]>([]);
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
      if (e instanceof ApiError) setCommitErrors(e.message.split("; "));
      else setError(e);
    } finally {
      setBusy(false);
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
                {commitErrors.map((m, i) => (
                  <li key={i}>{m}</li>
                ))}
              </ul>
            </div>
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
