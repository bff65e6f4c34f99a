// The upload queue's transport in the browser: XMLHttpRequest, because fetch() cannot report
// upload progress. One PUT of raw bytes per file, as the REST contract says.
import { authHeaders, requireAuth } from "../api/auth";
import type { ErrorResponse } from "../api/schema.gen";
import { detailText } from "./errors";
import { UploadError, fileUploadUrl, type SendFn } from "./uploadQueue";

export function xhrSender<R>(datasetId: number): SendFn<R> {
  return (item, onProgress, signal) =>
    new Promise<R>((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", fileUploadUrl(datasetId, item.path));
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
      xhr.upload.onprogress = (e) => onProgress(e.loaded);
      xhr.onload = () => {
        let body: unknown = null;
        try {
          body = xhr.responseText ? JSON.parse(xhr.responseText) : null;
        } catch {
          body = xhr.responseText;
        }
        if (xhr.status >= 200 && xhr.status < 300) return resolve(body as R);
        if (xhr.status === 401) requireAuth();
        // the API answers ErrorResponse; anything else came from something in between (a proxy)
        const ours = body && typeof body === "object" && "detail" in body;
        reject(new UploadError(ours ? detailText((body as ErrorResponse).detail) : `HTTP ${xhr.status}`, xhr.status));
      };
      xhr.onerror = () => reject(new UploadError("network error (connection lost)", null));
      xhr.onabort = () => reject(new UploadError("cancelled", null));
      signal.addEventListener("abort", () => xhr.abort(), { once: true });
      xhr.send(item.file);
    });
}
