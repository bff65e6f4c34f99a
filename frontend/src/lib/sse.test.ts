import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { SSEParser, connectSSE, type SSEEvent } from "./sse";

describe("SSEParser", () => {
  it("parses named events, ids, multi-line data, comments and retry", () => {
    const p = new SSEParser();
    const evs = p.push(": keep-alive\n\nevent: progress\nid: 7\ndata: {\"step\": 3}\n\ndata: a\ndata: b\n\nretry: 2500\n\n");
    expect(evs).toEqual([
      { event: "progress", data: '{"step": 3}', id: "7" },
      { event: "message", data: "a\nb", id: "7" },
    ]);
    expect(p.retryMs).toBe(2500);
    expect(p.lastEventId).toBe("7");
  });

  it("handles CRLF and CR line ends and events split across chunks anywhere", () => {
    const text = "event: status\r\ndata: {\"status\":\"running\"}\r\nid: 12\r\n\r\nevent: metrics\rdata: x\r\r";
    for (let cut = 1; cut < text.length; cut++) {
      const p = new SSEParser();
      const evs = [...p.push(text.slice(0, cut)), ...p.push(text.slice(cut))];
      expect(evs, `cut at ${cut}`).toEqual([
        { event: "status", data: '{"status":"running"}', id: "12" },
        { event: "metrics", data: "x", id: "12" },
      ]);
    }
  });

  it("ignores events without data and fields it does not know", () => {
    const p = new SSEParser();
    expect(p.push("event: ping\n\nfoo: bar\ndata:no-space\n\n")).toEqual([{ event: "message", data: "no-space", id: null }]);
  });
});

// A real HTTP server speaking SSE, so the fetch-based client is tested over a socket.
type Handler = (req: IncomingMessage, res: ServerResponse, n: number) => void;
let server: ReturnType<typeof createServer> | null = null;

async function serve(handler: Handler): Promise<{ url: string; requests: IncomingMessage[] }> {
  const requests: IncomingMessage[] = [];
  server = createServer((req, res) => {
    requests.push(req);
    handler(req, res, requests.length);
  });
  await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/api/jobs/1/events`, requests };
}

afterEach(async () => {
  const s = server;
  server = null;
  if (!s) return;
  s.closeAllConnections();
  await new Promise((r) => s.close(r));
});

function until(cond: () => boolean, ms = 3000): Promise<void> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const check = () => (cond() ? resolve() : Date.now() - t0 > ms ? reject(new Error("timed out")) : setTimeout(check, 5));
    check();
  });
}

describe("connectSSE", () => {
  it("sends the bearer token, and after a dropped connection resumes with Last-Event-ID", async () => {
    const { url, requests } = await serve((_req, res, n) => {
      res.writeHead(200, { "Content-Type": "text/event-stream" });
      if (n === 1) {
        res.write("event: progress\nid: 1\ndata: {\"step\":1}\n\n");
        res.write("event: progress\nid: 2\ndata: {\"step\":2}\n\n");
        setTimeout(() => res.destroy(), 20); // the connection drops
      } else {
        res.write("event: status\nid: 3\ndata: {\"status\":\"succeeded\"}\n\n");
      }
    });
    const got: SSEEvent[] = [];
    const conn = connectSSE(url, { headers: () => ({ Authorization: "Bearer s3cret" }), onEvent: (e) => got.push(e), initialRetryMs: 10 });
    await until(() => got.length === 3);
    conn.close();
    expect(got.map((e) => [e.event, e.id])).toEqual([
      ["progress", "1"],
      ["progress", "2"],
      ["status", "3"],
    ]);
    expect(requests[0].headers.authorization).toBe("Bearer s3cret");
    expect(requests[0].headers["last-event-id"]).toBeUndefined();
    expect(requests[1].headers["last-event-id"]).toBe("2");
    expect(requests[1].headers.authorization).toBe("Bearer s3cret");
    expect(conn.lastEventId).toBe("3");
  });

  it("retries after server errors with back-off, but stops on 401/403/404", async () => {
    const { url, requests } = await serve((_req, res, n) => {
      if (n <= 2) {
        res.writeHead(503).end();
        return;
      }
      res.writeHead(200, { "Content-Type": "text/event-stream" });
      res.write("data: hello\n\n");
    });
    const got: SSEEvent[] = [];
    const errors: Array<number | undefined> = [];
    const conn = connectSSE(url, { onEvent: (e) => got.push(e), onError: (_e, s) => void errors.push(s), initialRetryMs: 5 });
    await until(() => got.length === 1);
    conn.close();
    expect(errors).toEqual([503, 503]);
    expect(requests.length).toBe(3);

    server!.closeAllConnections();
    await new Promise((r) => server!.close(r));
    const denied = await serve((_req, res) => res.writeHead(401).end());
    const statuses: Array<number | undefined> = [];
    const c2 = connectSSE(denied.url, { onEvent: () => undefined, onError: (_e, s) => void statuses.push(s), initialRetryMs: 5 });
    await until(() => statuses.length === 1);
    await new Promise((r) => setTimeout(r, 60));
    c2.close();
    expect(denied.requests.length).toBe(1);
  });

  it("does not reconnect after a clean end when told the job is over", async () => {
    const { url, requests } = await serve((_req, res) => {
      res.writeHead(200, { "Content-Type": "text/event-stream" });
      res.end("event: status\ndata: {\"status\":\"succeeded\"}\n\n");
    });
    let over = false;
    const conn = connectSSE(url, {
      onEvent: (e) => (over = e.event === "status"),
      shouldReconnect: () => !over,
      initialRetryMs: 5,
    });
    await until(() => over);
    await new Promise((r) => setTimeout(r, 60));
    conn.close();
    expect(requests.length).toBe(1);
  });

  it("close() stops a live stream and any reconnect", async () => {
    const { url, requests } = await serve((_req, res) => {
      res.writeHead(200, { "Content-Type": "text/event-stream" });
      res.write(": open\n\n");
    });
    const conn = connectSSE(url, { onEvent: () => undefined, initialRetryMs: 5 });
    await until(() => requests.length === 1);
    conn.close();
    await new Promise((r) => setTimeout(r, 60));
    expect(requests.length).toBe(1);
  });
});
