// A job page's live state: initial REST load, then Server-Sent Events (fetch-based, with
// the token and Last-Event-ID reconnects), plus slow polling as a safety net.
import { useEffect, useReducer, useRef } from "react";
import { authHeaders, requireAuth } from "../api/auth";
import { api } from "../api/endpoints";
import type { MetricOut as MetricRow } from "../api/schema.gen";
import type { Job } from "./job";
import { isTerminal } from "./job";
import { applyEvent, applyLive, initialLive, mergeMetrics, type LiveState } from "./jobEvents";
import { connectSSE, type SSEEvent } from "./sse";
import { RateEstimator } from "./rate";

type Action =
  | { type: "event"; ev: SSEEvent }
  | { type: "job"; job: Job }
  | { type: "metrics"; rows: MetricRow[] }
  | { type: "live"; live: Parameters<typeof applyLive>[1] }
  | { type: "connected"; on: boolean };

interface State extends LiveState {
  connected: boolean;
}

function reducer(s: State, a: Action): State {
  switch (a.type) {
    case "event":
      return { ...s, ...applyEvent(s, a.ev) };
    case "job":
      return { ...s, job: a.job };
    case "metrics":
      return { ...s, metrics: mergeMetrics(s.metrics, a.rows) };
    case "live":
      return { ...s, ...applyLive(s, a.live) };
    case "connected":
      return { ...s, connected: a.on };
  }
}

export function useJobLive(id: number) {
  const [state, dispatch] = useReducer(reducer, { ...initialLive, connected: false });
  const rate = useRef(new RateEstimator());
  const statusRef = useRef<Job["status"] | null>(null);
  statusRef.current = state.job?.status ?? null;

  useEffect(() => {
    let alive = true;
    rate.current = new RateEstimator();
    const load = async () => {
      const job = await api.job(id);
      if (!alive) return;
      dispatch({ type: "job", job });
      const rows = await api.metrics(id).catch(() => [] as MetricRow[]);
      if (alive) dispatch({ type: "metrics", rows });
    };
    void load().catch(() => undefined);
    // the loss curve, phase and run facts so far (the stream brings what follows)
    api.live(id).then((live) => alive && dispatch({ type: "live", live })).catch(() => undefined);
    const conn = connectSSE(api.jobEventsUrl(id), {
      headers: authHeaders,
      onOpen: () => dispatch({ type: "connected", on: true }),
      onEvent: (ev) => dispatch({ type: "event", ev }),
      onError: (_e, status) => {
        dispatch({ type: "connected", on: false });
        if (status === 401) requireAuth();
      },
      shouldReconnect: () => !isTerminal(statusRef.current),
    });
    // Safety net: the job row is the truth; refresh it now and then.
    const poll = setInterval(() => {
      if (!isTerminal(statusRef.current)) void load().catch(() => undefined);
    }, 5000);
    return () => {
      alive = false;
      conn.close();
      clearInterval(poll);
    };
  }, [id]);

  // When a job finishes, fetch the final row and all metrics once more.
  const status = state.job?.status;
  useEffect(() => {
    if (!status || !isTerminal(status)) return;
    api.job(id).then((job) => dispatch({ type: "job", job })).catch(() => undefined);
    api.metrics(id).then((rows) => dispatch({ type: "metrics", rows })).catch(() => undefined);
  }, [id, status]);

  const p = state.job?.progress;
  if (p && typeof p.step === "number") rate.current.add(p.step, Date.now() / 1000);
  const itPerS = p?.it_s ?? rate.current.rate();
  const eta = p?.eta_s ?? (p ? rate.current.eta(p.total) : null);
  return { ...state, itPerS, eta, refresh: () => api.job(id).then((job) => dispatch({ type: "job", job })) };
}
