import { describe, expect, it } from "vitest";
import { UploadError, UploadQueue, fileUploadUrl, isHiddenPath, mayPassNextTime, type SendFn } from "./uploadQueue";

const blob = (n: number) => new Blob([new Uint8Array(n)]);

/** A transport whose requests the test finishes by hand. */
function manualSender() {
  const calls: Array<{ path: string; progress: (n: number) => void; resolve: (v: unknown) => void; reject: (e: unknown) => void; signal: AbortSignal }> = [];
  let maxActive = 0;
  let active = 0;
  const send: SendFn<unknown> = (item, progress, signal) =>
    new Promise((resolve, reject) => {
      active++;
      maxActive = Math.max(maxActive, active);
      const done = () => active--;
      calls.push({
        path: item.path,
        progress,
        resolve: (v) => (done(), resolve(v)),
        reject: (e) => (done(), reject(e)),
        signal,
      });
      signal.addEventListener("abort", () => (done(), reject(new UploadError("cancelled"))));
    });
  return { send, calls, maxActive: () => maxActive };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe("UploadQueue", () => {
  it("sends at most `concurrency` files at a time and finishes them all", async () => {
    let active = 0;
    let max = 0;
    const send: SendFn<string> = async (item) => {
      active++;
      max = Math.max(max, active);
      await new Promise((r) => setTimeout(r, 1 + (item.size % 3)));
      active--;
      return item.path;
    };
    const q = new UploadQueue(send, 4);
    q.add(Array.from({ length: 15 }, (_, i) => ({ path: `d/f${i}.nii.gz`, file: blob(10 + i) })));
    await q.start();
    expect(max).toBe(4);
    const s = q.summary();
    expect(s.filesDone).toBe(15);
    expect(s.finished).toBe(true);
    expect(s.fraction).toBe(1);
    expect(q.items.map((i) => i.result)).toEqual(q.items.map((i) => i.path));
  });

  it("counts bytes in flight and done for the overall progress", async () => {
    const m = manualSender();
    const q = new UploadQueue(m.send, 2);
    q.add([
      { path: "a", file: blob(100) },
      { path: "b", file: blob(300) },
      { path: "c", file: blob(600) },
    ]);
    const done = q.start();
    await tick();
    expect(m.calls.map((c) => c.path)).toEqual(["a", "b"]);
    m.calls[0].progress(50);
    m.calls[1].progress(150);
    expect(q.summary()).toMatchObject({ bytesDone: 200, bytesTotal: 1000, filesActive: 2, filesPending: 1, fraction: 0.2 });
    m.calls[0].resolve({});
    await tick();
    expect(m.calls.map((c) => c.path)).toEqual(["a", "b", "c"]); // the freed slot starts c
    expect(q.summary()).toMatchObject({ bytesDone: 250, filesDone: 1 });
    m.calls[1].resolve({});
    m.calls[2].resolve({});
    await done;
    expect(q.summary()).toMatchObject({ bytesDone: 1000, filesDone: 3, finished: true });
  });

  it("keeps each failure's server message and status, and retries only the files that may pass now", async () => {
    const attempts: Record<string, number> = {};
    let healed = false;
    const send: SendFn<null> = async (item) => {
      attempts[item.path] = (attempts[item.path] ?? 0) + 1;
      if (item.path === "bad.nii.gz") throw new UploadError("bad.nii.gz: not a NIfTI file (wrong magic)", 415);
      if (item.path === "flaky.nii.gz" && !healed) throw new UploadError("network error (connection lost)", null);
      return null;
    };
    const q = new UploadQueue(send, 3);
    q.add(["ok1.nii.gz", "bad.nii.gz", "flaky.nii.gz", "ok2.nii.gz"].map((p) => ({ path: p, file: blob(10) })));
    await q.start();
    const failed = q.items.filter((i) => i.state === "failed");
    expect(failed.map((f) => [f.path, f.error, f.status])).toEqual([
      ["bad.nii.gz", "bad.nii.gz: not a NIfTI file (wrong magic)", 415],
      ["flaky.nii.gz", "network error (connection lost)", null],
    ]);
    expect(q.summary()).toMatchObject({ filesDone: 2, filesFailed: 2, finished: true });
    expect(q.canRetry()).toBe(true); // the network failure
    healed = true;
    await q.retryFailed();
    // the refused file is not sent again: the server's verdict on its content would not change
    expect(attempts).toEqual({ "ok1.nii.gz": 1, "bad.nii.gz": 1, "flaky.nii.gz": 2, "ok2.nii.gz": 1 });
    expect(q.canRetry()).toBe(false);
    expect(q.items.find((i) => i.path === "flaky.nii.gz")?.state).toBe("done");
    expect(q.items.find((i) => i.path === "bad.nii.gz")?.state).toBe("failed");
  });

  it("cancel aborts requests in flight and leaves the rest unsent; retry resumes", async () => {
    const m = manualSender();
    const q = new UploadQueue(m.send, 2);
    q.add(["a", "b", "c", "d"].map((p) => ({ path: p, file: blob(10) })));
    const idle = q.start();
    await tick();
    expect(m.calls.length).toBe(2);
    q.cancel();
    await idle; // resolves on cancel
    expect(m.calls.every((c) => c.signal.aborted)).toBe(true);
    expect(q.items.map((i) => i.state)).toEqual(["cancelled", "cancelled", "cancelled", "cancelled"]);
    await tick();
    expect(m.calls.length).toBe(2); // nothing new was started
    const again = q.retryFailed();
    await tick();
    expect(m.calls.length).toBe(4);
    m.calls.slice(2).forEach((c) => c.resolve({}));
    await tick();
    m.calls.slice(4).forEach((c) => c.resolve({}));
    await again;
    expect(q.summary().filesDone).toBe(4);
    expect(m.maxActive()).toBeLessThanOrEqual(2);
  });

  it("adding a path again replaces its entry instead of duplicating it", () => {
    const q = new UploadQueue(async () => null, 1);
    q.add([{ path: "x.nii", file: blob(5) }]);
    q.add([{ path: "x.nii", file: blob(7) }]);
    expect(q.items.length).toBe(1);
    expect(q.items[0].size).toBe(7);
  });

  it("notifies subscribers on progress", async () => {
    const q = new UploadQueue(async (_i, progress) => (progress(1), null), 1);
    let n = 0;
    q.subscribe(() => n++);
    q.add([{ path: "a", file: blob(2) }]);
    await q.start();
    expect(n).toBeGreaterThanOrEqual(3); // add, start, progress, done
  });
});

describe("upload helpers", () => {
  it("tells refusals of the file from failures on the way", () => {
    for (const s of [413, 415, 422, 400, 409]) expect(mayPassNextTime(s), String(s)).toBe(false);
    for (const s of [null, 401, 408, 429, 500, 502, 503]) expect(mayPassNextTime(s), String(s)).toBe(true);
  });

  it("skips hidden and OS junk files", () => {
    expect(isHiddenPath("scans/.DS_Store")).toBe(true);
    expect(isHiddenPath("scans/._a.nii.gz")).toBe(true);
    expect(isHiddenPath("scans/.git/config")).toBe(true);
    expect(isHiddenPath("__MACOSX/a.nii")).toBe(true);
    expect(isHiddenPath("scans/sub/a.nii.gz")).toBe(false);
  });

  it("encodes each path segment but keeps the folder slashes", () => {
    expect(fileUploadUrl(7, "my scans/sub#1/a b.nii.gz")).toBe("/api/datasets/7/files/my%20scans/sub%231/a%20b.nii.gz");
  });

  it("removes a file: done, pending or in flight, and the counts leave it out", async () => {
    const m = manualSender();
    const q = new UploadQueue(m.send, 1);
    q.add([
      { path: "a.nii", file: blob(10) },
      { path: "b.png", file: blob(5) },
      { path: "c.nii", file: blob(10) },
    ]);
    const idle = q.start();
    await tick();
    m.calls[0].resolve("ok");
    await tick();
    expect(m.calls.map((c) => c.path)).toEqual(["a.nii", "b.png"]);
    q.remove("b.png"); // in flight: aborted, and the next one starts
    await tick();
    expect(m.calls[1].signal.aborted).toBe(true);
    expect(m.calls.map((c) => c.path)).toEqual(["a.nii", "b.png", "c.nii"]);
    m.calls[2].resolve("ok");
    await idle;
    q.remove("a.nii"); // done (the server removed it)
    const s = q.summary();
    expect([s.filesTotal, s.filesDone, s.bytesTotal, s.finished]).toEqual([1, 1, 10, true]);
    expect(q.items.map((i) => i.path)).toEqual(["c.nii"]);
  });
});
