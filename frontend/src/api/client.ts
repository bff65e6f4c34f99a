// fetch() wrapper: JSON in and out, the bearer token when one is set, errors as ApiError
// carrying the server's `detail`, and a 401 anywhere opens the login prompt.
import { authHeaders, requireAuth } from "./auth";
import { detailText } from "../lib/errors";

export class ApiError extends Error {
  constructor(
    public status: number,
    public detail: unknown,
  ) {
    super(detailText(detail) || `HTTP ${status}`);
    this.name = "ApiError";
  }
}

async function readDetail(res: Response): Promise<unknown> {
  const text = await res.text();
  if (!text) return `${res.status} ${res.statusText}`;
  try {
    const body = JSON.parse(text);
    return body && typeof body === "object" && "detail" in body ? body.detail : body;
  } catch {
    return text.slice(0, 500);
  }
}

export async function apiFetch(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  for (const [k, v] of Object.entries(authHeaders())) headers.set(k, v);
  const res = await fetch(path, { ...init, headers });
  if (res.status === 401) requireAuth();
  if (!res.ok) throw new ApiError(res.status, await readDetail(res));
  return res;
}

export async function apiJson<T>(path: string, init: RequestInit = {}): Promise<T> {
  const res = await apiFetch(path, init);
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

export function get<T>(path: string): Promise<T> {
  return apiJson<T>(path);
}

export function post<T>(path: string, body?: unknown): Promise<T> {
  return apiJson<T>(path, {
    method: "POST",
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

export function del(path: string): Promise<void> {
  return apiJson<void>(path, { method: "DELETE" });
}

/** Fetch a file as an object URL (used where a plain link cannot carry the token). */
export async function fetchBlobUrl(path: string): Promise<string> {
  const res = await apiFetch(path);
  return URL.createObjectURL(await res.blob());
}
