// The typed REST client: openapi-fetch over `paths`, which scripts/api_client.py generates from
// the API's OpenAPI description (schema.gen.ts). It sends the bearer token, a 401 anywhere opens
// the sign-in prompt, and a failure is thrown as ApiError with the server's `detail`.
import createClient, { type Middleware } from "openapi-fetch";
import { authHeaders, requireAuth } from "./auth";
import type { ErrorResponse, paths } from "./schema.gen";
import { detailText } from "../lib/errors";

export type Detail = ErrorResponse["detail"];

export class ApiError extends Error {
  constructor(
    public status: number,
    public detail: Detail,
  ) {
    super(detailText(detail));
    this.name = "ApiError";
  }
}

/** The API answers every error as ErrorResponse; anything else came from something in between
 * (a proxy while the API restarts), and then the status line is all there is to say. */
function detailOf(res: Response, body: unknown): Detail {
  if (body && typeof body === "object" && "detail" in body) return (body as ErrorResponse).detail;
  return `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ""}`;
}

const auth: Middleware = {
  onRequest({ request }) {
    for (const [k, v] of Object.entries(authHeaders())) request.headers.set(k, v);
    return request;
  },
  onResponse({ response }) {
    if (response.status === 401) requireAuth();
    return response;
  },
};

export const rest = createClient<paths>();
rest.use(auth);

/** The data of an openapi-fetch call, or ApiError. */
export async function must<D>(call: Promise<{ data?: D; error?: unknown; response: Response }>): Promise<D> {
  const { data, error, response } = await call;
  if (!response.ok) throw new ApiError(response.status, detailOf(response, error));
  return data as D;
}

/** A route's URL from its OpenAPI path template, for what is not JSON (files, logs, events):
 * the template is checked against the generated `paths`, so a renamed route fails to compile.
 * Each value is encoded segment by segment (a file's path keeps its folders). */
export function routeUrl<P extends keyof paths>(template: P, params: Record<string, string | number>): string {
  return String(template).replace(/\{(\w+)\}/g, (_m, k: string) => {
    if (!(k in params)) throw new Error(`routeUrl: ${String(template)} needs ${k}`);
    return String(params[k]).split("/").map(encodeURIComponent).join("/");
  });
}

/** fetch() for the non-JSON routes, with the same token and error handling. */
export async function apiFetch(url: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  for (const [k, v] of Object.entries(authHeaders())) headers.set(k, v);
  const res = await fetch(url, { ...init, headers });
  if (res.status === 401) requireAuth();
  if (!res.ok) {
    const text = await res.text();
    let body: unknown = null;
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
    throw new ApiError(res.status, detailOf(res, body));
  }
  return res;
}

/** Fetch a file as an object URL (used where a plain link cannot carry the token). */
export async function fetchBlobUrl(url: string): Promise<string> {
  const res = await apiFetch(url);
  return URL.createObjectURL(await res.blob());
}

/** The file name a Content-Disposition header gives (RFC 6266: filename* wins over filename). */
export function attachmentName(header: string | null): string | null {
  if (!header) return null;
  const star = /filename\*\s*=\s*[^']*'[^']*'([^;]+)/i.exec(header);
  if (star) {
    try {
      return decodeURIComponent(star[1].trim());
    } catch {
      /* a malformed encoding: fall back to the plain name */
    }
  }
  const plain = /filename\s*=\s*("([^"]*)"|[^;]+)/i.exec(header);
  return plain ? (plain[2] ?? plain[1]).trim() : null;
}

/** A download with the token: the bytes as an object URL and the name the server gives them. */
export async function fetchDownload(url: string): Promise<{ url: string; filename: string | null }> {
  const res = await apiFetch(url);
  return { url: URL.createObjectURL(await res.blob()), filename: attachmentName(res.headers.get("Content-Disposition")) };
}
