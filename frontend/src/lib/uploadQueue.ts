// A queue that uploads files a few at a time, tracks bytes and files for one overall
// progress bar, keeps each failure's server message, retries failed files and cancels.
// The transport is injected (XHR in the app, a plain function in tests).
import { routeUrl } from "../api/client";

export type UploadState = "pending" | "uploading" | "done" | "failed" | "cancelled";

export interface UploadItem<R = unknown> {
  path: string;
  size: number;
  file: Blob;
  state: UploadState;
  loaded: number;
  error: string | null;
  status: number | null;
  attempts: number;
  result: R | null;
}

export class UploadError extends Error {
  constructor(
    message: string,
    public status: number | null = null,
  ) {
    super(message);
    this.name = "UploadError";
  }
}

export type SendFn<R> = (
  item: { path: string; file: Blob; size: number },
  onProgress: (loaded: number) => void,
  signal: AbortSignal,
) => Promise<R>;

export interface UploadSummary {
  filesTotal: number;
  filesDone: number;
  filesFailed: number;
  filesActive: number;
  filesPending: number;
  bytesTotal: number;
  bytesDone: number;
  fraction: number;
  running: boolean;
  finished: boolean; // nothing pending or in flight
}

export class UploadQueue<R = unknown> {
  items: UploadItem<R>[] = [];
  private active = new Map<UploadItem<R>, AbortController>();
  private listeners = new Set<() => void>();
  private idleWaiters: Array<() => void> = [];
  private cancelled = false;

  constructor(
    private send: SendFn<R>,
    private concurrency = 4,
  ) {}

  add(files: Array<{ path: string; file: Blob }>): void {
    const byPath = new Map(this.items.map((i) => [i.path, i]));
    for (const f of files) {
      const existing = byPath.get(f.path);
      const item: UploadItem<R> = {
        path: f.path,
        size: f.file.size,
        file: f.file,
        state: "pending",
        loaded: 0,
        error: null,
        status: null,
        attempts: 0,
        result: null,
      };
      if (existing) {
        // The same path again replaces the old entry (the server replaces the file too).
        if (existing.state === "uploading") continue;
        Object.assign(existing, item);
      } else {
        this.items.push(item);
        byPath.set(f.path, item);
      }
    }
    this.emit();
  }

  /** Start (or continue) sending pending files; resolves when the queue is idle. */
  start(): Promise<void> {
    this.cancelled = false;
    this.pump();
    return this.whenIdle();
  }

  whenIdle(): Promise<void> {
    if (this.active.size === 0 && !this.hasPendingToRun()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Whether "retry" can change anything: a file was cancelled or failed on the way. */
  canRetry(): boolean {
    return this.items.some((i) => i.state === "cancelled" || (i.state === "failed" && mayPassNextTime(i.status)));
  }

  /** Put cancelled files and those that failed on the way back in the queue and start again;
   * a file the server refused (bad content, too large) would be refused again and stays failed. */
  retryFailed(): Promise<void> {
    for (const i of this.items) {
      if (i.state === "cancelled" || (i.state === "failed" && mayPassNextTime(i.status))) {
        i.state = "pending";
        i.error = null;
        i.status = null;
        i.loaded = 0;
      }
    }
    this.emit();
    return this.start();
  }

  /** Drop a file from the queue (aborting it if in flight): after the server removed it, or
   * before it was sent. The counts and the progress bar then leave it out. */
  remove(path: string): void {
    const item = this.items.find((i) => i.path === path);
    if (!item) return;
    const ctl = this.active.get(item);
    if (ctl) {
      this.active.delete(item);
      ctl.abort();
    }
    this.items = this.items.filter((i) => i !== item);
    this.emit();
    this.pump();
  }

  /** Abort files in flight and mark everything not yet done as cancelled. */
  cancel(): void {
    this.cancelled = true;
    for (const i of this.items) if (i.state === "pending") i.state = "cancelled";
    for (const [item, ctl] of this.active) {
      item.state = "cancelled";
      item.loaded = 0;
      ctl.abort();
    }
    this.active.clear();
    this.emit();
    this.settleIdle();
  }

  subscribe(l: () => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  summary(): UploadSummary {
    let bytesTotal = 0;
    let bytesDone = 0;
    let filesDone = 0;
    let filesFailed = 0;
    let filesActive = 0;
    let filesPending = 0;
    for (const i of this.items) {
      bytesTotal += i.size;
      if (i.state === "done") {
        filesDone++;
        bytesDone += i.size;
      } else if (i.state === "uploading") {
        filesActive++;
        bytesDone += Math.min(i.loaded, i.size);
      } else if (i.state === "failed") filesFailed++;
      else if (i.state === "pending") filesPending++;
    }
    return {
      filesTotal: this.items.length,
      filesDone,
      filesFailed,
      filesActive,
      filesPending,
      bytesTotal,
      bytesDone,
      fraction: bytesTotal > 0 ? bytesDone / bytesTotal : this.items.length && filesDone === this.items.length ? 1 : 0,
      running: filesActive > 0,
      finished: filesActive === 0 && filesPending === 0,
    };
  }

  private hasPendingToRun(): boolean {
    return !this.cancelled && this.items.some((i) => i.state === "pending");
  }

  private pump(): void {
    while (!this.cancelled && this.active.size < this.concurrency) {
      const next = this.items.find((i) => i.state === "pending");
      if (!next) break;
      void this.run(next);
    }
    if (this.active.size === 0 && !this.hasPendingToRun()) this.settleIdle();
  }

  private async run(item: UploadItem<R>): Promise<void> {
    const ctl = new AbortController();
    this.active.set(item, ctl);
    item.state = "uploading";
    item.loaded = 0;
    item.attempts++;
    this.emit();
    try {
      const result = await this.send(
        { path: item.path, file: item.file, size: item.size },
        (loaded) => {
          if (this.active.get(item) !== ctl) return;
          item.loaded = loaded;
          this.emit();
        },
        ctl.signal,
      );
      if (this.active.get(item) !== ctl) return; // cancelled meanwhile
      item.state = "done";
      item.loaded = item.size;
      item.result = result;
    } catch (err) {
      if (this.active.get(item) !== ctl) return;
      item.state = "failed";
      item.loaded = 0;
      item.error = err instanceof Error ? err.message : String(err);
      item.status = err instanceof UploadError ? err.status : null;
    } finally {
      if (this.active.get(item) === ctl) this.active.delete(item);
    }
    this.emit();
    this.pump();
  }

  private settleIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    waiters.forEach((w) => w());
  }

  private emit(): void {
    this.listeners.forEach((l) => l());
  }
}

/** A failure that says nothing about the file: no answer (network), sign-in needed, the server
 * busy or broken. Any other 4xx is the server's verdict on the file itself (413, 415, 422). */
export function mayPassNextTime(status: number | null): boolean {
  return status === null || status === 401 || status === 408 || status === 429 || status >= 500;
}

/** Files a user would not mean to upload (".DS_Store", "._x", anything in ".git/"). */
export function isHiddenPath(path: string): boolean {
  return path.split("/").some((seg) => seg.startsWith(".") || seg === "Thumbs.db" || seg === "__MACOSX");
}

/** URL of the per-file PUT: each path segment encoded, the slashes kept. */
export function fileUploadUrl(datasetId: number, path: string): string {
  return routeUrl("/api/datasets/{dataset_id}/files/{path}", { dataset_id: datasetId, path });
}
