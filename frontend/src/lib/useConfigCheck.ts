// Live server check of the config being edited (POST /api/config/check), debounced: errors by
// key path, the exact parameter count and a training-memory estimate. An older answer never
// replaces a newer one.
import { useEffect, useRef, useState } from "react";
import { api } from "../api/endpoints";
import type { ConfigCheckOut, DeviceChoice } from "../api/schema.gen";
import { fieldErrors, type FieldError } from "./errors";

export const CHECK_DELAY_MS = 300;

export interface LiveCheck {
  state: "idle" | "checking" | "done";
  result: ConfigCheckOut | null;
  errors: FieldError[];
  failure: unknown; // the check itself could not run (network, 5xx)
}

export function useConfigCheck(kind: string, config: unknown, device: DeviceChoice = "auto"): LiveCheck {
  const [live, setLive] = useState<LiveCheck>({ state: "idle", result: null, errors: [], failure: null });
  const seq = useRef(0);
  const text = JSON.stringify(config ?? null);
  useEffect(() => {
    if (config == null) return;
    const mine = ++seq.current;
    const abort = new AbortController();
    setLive((l) => ({ ...l, state: "checking" }));
    const timer = setTimeout(() => {
      api
        .checkConfig(kind, config, abort.signal, device)
        .then((result) => mine === seq.current && setLive({ state: "done", result, errors: fieldErrors(result.errors ?? []), failure: null }))
        .catch((e) => mine === seq.current && !abort.signal.aborted && setLive({ state: "done", result: null, errors: [], failure: e }));
    }, CHECK_DELAY_MS);
    return () => {
      clearTimeout(timer);
      abort.abort();
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [kind, text, device]);
  return live;
}
