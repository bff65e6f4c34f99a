// Bearer token kept for the browser session only (sessionStorage), plus a tiny
// pub/sub so that any 401 anywhere in the app can open the login prompt.
const KEY = "ddpm-studio.token";

type Listener = () => void;
const listeners = new Set<Listener>();

function storage(): Storage | null {
  try {
    return typeof sessionStorage === "undefined" ? null : sessionStorage;
  } catch {
    return null;
  }
}

let memoryToken: string | null = null;

export function getToken(): string | null {
  const s = storage();
  return s ? s.getItem(KEY) : memoryToken;
}

export function setToken(token: string | null): void {
  const s = storage();
  if (s) {
    if (token) s.setItem(KEY, token);
    else s.removeItem(KEY);
  } else {
    memoryToken = token;
  }
  listeners.forEach((l) => l());
}

export function authHeaders(): Record<string, string> {
  const t = getToken();
  return t ? { Authorization: `Bearer ${t}` } : {};
}

let authRequired = false;

/** Called when the API answers 401: shows the login prompt. */
export function requireAuth(): void {
  authRequired = true;
  listeners.forEach((l) => l());
}

export function clearAuthRequired(): void {
  authRequired = false;
  listeners.forEach((l) => l());
}

export function isAuthRequired(): boolean {
  return authRequired;
}

export function subscribeAuth(l: Listener): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}
