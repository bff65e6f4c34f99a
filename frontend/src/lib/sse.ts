// Server-Sent Events over fetch(): unlike EventSource it can send the Authorization
// header, and it resumes with Last-Event-ID after a dropped connection.

export interface SSEEvent {
  event: string; // "message" when the server gave no event name
  data: string;
  id: string | null;
}

/** Incremental parser of the text/event-stream format (WHATWG HTML §9.2.6). */
export class SSEParser {
  private buf = "";
  private data: string[] = [];
  private eventName = "";
  private sawData = false;
  private skipLF = false;
  lastEventId: string | null = null;
  retryMs: number | null = null;

  /** Feed decoded text; returns the events completed by it. */
  push(chunk: string): SSEEvent[] {
    // A chunk that ended on "\r" may continue with the "\n" of the same "\r\n".
    if (this.skipLF && chunk.startsWith("\n")) chunk = chunk.slice(1);
    this.skipLF = false;
    this.buf += chunk;
    const out: SSEEvent[] = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buf);
      if (!m) break;
      if (m[0] === "\r" && m.index === this.buf.length - 1) this.skipLF = true;
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      const ev = this.line(line);
      if (ev) out.push(ev);
    }
    return out;
  }

  private line(line: string): SSEEvent | null {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return null; // comment / keep-alive
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "event":
        this.eventName = value;
        break;
      case "data":
        this.data.push(value);
        this.sawData = true;
        break;
      case "id":
        if (!value.includes("\0")) this.lastEventId = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retryMs = Number(value);
        break;
    }
    return null;
  }

  private dispatch(): SSEEvent | null {
    const name = this.eventName || "message";
    const had = this.sawData;
    const data = this.data.join("\n");
    this.data = [];
    this.eventName = "";
    this.sawData = false;
    if (!had) return null;
    return { event: name, data, id: this.lastEventId };
  }
}

export interface SSEOptions {
  headers?: () => Record<string, string>;
  onEvent: (ev: SSEEvent) => void;
  onOpen?: () => void;
  /** Called on every failure; return false to stop reconnecting. */
  onError?: (err: unknown, status?: number) => boolean | void;
  /** Checked after a clean end of stream; return false to stop (e.g. the job finished). */
  shouldReconnect?: () => boolean;
  lastEventId?: string | null;
  initialRetryMs?: number;
  maxRetryMs?: number;
  fetchImpl?: typeof fetch;
}

export interface SSEConnection {
  close(): void;
  readonly lastEventId: string | null;
  readonly connects: number;
}

/** Open an SSE stream that reconnects on its own with exponential back-off. */
export function connectSSE(url: string, opts: SSEOptions): SSEConnection {
  const doFetch = opts.fetchImpl ?? fetch.bind(globalThis);
  const base = opts.initialRetryMs ?? 1000;
  const max = opts.maxRetryMs ?? 15000;
  let closed = false;
  let controller: AbortController | null = null;
  let lastId: string | null = opts.lastEventId ?? null;
  let serverRetry: number | null = null;
  let failures = 0;
  let connects = 0;
  let timer: ReturnType<typeof setTimeout> | null = null;

  const schedule = () => {
    if (closed) return;
    const delay = serverRetry ?? Math.min(max, base * 2 ** Math.min(failures, 6));
    timer = setTimeout(run, delay);
  };

  const run = async () => {
    timer = null;
    if (closed) return;
    controller = new AbortController();
    const headers: Record<string, string> = { Accept: "text/event-stream", ...(opts.headers?.() ?? {}) };
    if (lastId != null) headers["Last-Event-ID"] = lastId;
    let status: number | undefined;
    try {
      const res = await doFetch(url, { headers, signal: controller.signal, cache: "no-store" });
      status = res.status;
      if (!res.ok || !res.body) throw new Error(`SSE ${url}: HTTP ${res.status}`);
      connects++;
      failures = 0;
      opts.onOpen?.();
      const parser = new SSEParser();
      parser.lastEventId = lastId;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const ev of parser.push(value)) {
          lastId = parser.lastEventId;
          if (!closed) opts.onEvent(ev);
        }
        if (parser.retryMs != null) serverRetry = parser.retryMs;
      }
      if (closed) return;
      if (opts.shouldReconnect && !opts.shouldReconnect()) return;
      schedule();
    } catch (err) {
      if (closed) return;
      failures++;
      const go = opts.onError?.(err, status);
      // 4xx other than 408/429 will not fix itself by retrying.
      if (go === false || (status && status >= 400 && status < 500 && status !== 408 && status !== 429)) return;
      schedule();
    }
  };

  void run();
  return {
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      controller?.abort();
    },
    get lastEventId() {
      return lastId;
    },
    get connects() {
      return connects;
    },
  };
}
