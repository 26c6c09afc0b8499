/**
 * The batch event stream (`GET /v1/batches/{batch_id}/events`, Server-Sent Events) as typed events.
 *
 * Two readers, one contract: `streamBatchEvents` reads the stream with fetch and sends `Authorization: Bearer`;
 * `subscribeBatchEvents` asks for a short-lived stream ticket and uses a plain `EventSource` (which cannot send
 * headers). Both resume after a drop from the last event id they saw (`Last-Event-ID` header, or `last_event_id=`
 * on a fresh ticket URL), so no change is missed; the gateway answers a resume either with the events after that id
 * or with a new `snapshot`.
 */
import { createParser, type EventSourceMessage } from "eventsource-parser";

import {
  createConductorClient,
  gatewayUrl,
  resolveToken,
  type BatchStatusView,
  type ConnectionOptions,
  type PipelineRequestOutcome,
  type Schemas,
} from "./client";
import { isProblem, problemFromStatus, ProblemError, retryAfterSeconds, unwrap } from "./problem";

/** A change in the batch's per-step progress (the `progress` event's data). */
export type BatchProgress = Schemas["BatchProgressEvent"];

/** One event of a batch's stream; `id` is the batch row's version, the resume point. */
export type BatchEvent =
  | { type: "snapshot"; id: string; data: BatchStatusView }
  | { type: "request"; id: string; data: PipelineRequestOutcome }
  | { type: "progress"; id: string; data: BatchProgress };

export type BatchEventType = BatchEvent["type"];
export const BATCH_EVENT_TYPES: readonly BatchEventType[] = ["snapshot", "request", "progress"];

/** Where a subscription stands. */
export type StreamState = "connecting" | "open" | "reconnecting" | "closed";

export interface BatchEventHandlers {
  onEvent(event: BatchEvent): void;
  onState?(state: StreamState): void;
  /** A transport error or a problem answer; the stream goes on (reconnects) unless the problem is final. */
  onError?(error: unknown): void;
}

export interface StreamOptions {
  /** Resume after this event id instead of starting with a snapshot. */
  lastEventId?: string;
  /** First reconnection delay (ms); the server's `retry:` replaces it. Doubles per failed attempt. */
  retryMs?: number;
  /** Longest reconnection delay (ms). */
  maxRetryMs?: number;
  signal?: AbortSignal;
}

export interface BatchEventSubscription {
  /** Stop reading; no further callbacks after `closed` resolves. */
  close(): void;
  /** The id of the last event received (the resume point). */
  readonly lastEventId: string | undefined;
  /** Resolves once the subscription has stopped (closed, or a final problem such as 401/403/404). */
  readonly closed: Promise<void>;
}

/** Problems that a reconnection cannot cure: the subscription stops. */
const FINAL_STATUSES = new Set([400, 401, 403, 404, 422]);

function isBatchEventType(type: string): type is BatchEventType {
  return (BATCH_EVENT_TYPES as readonly string[]).includes(type);
}

/** Parse one SSE message into a typed event; `undefined` for event types this client does not know. */
export function parseBatchEvent(message: { event?: string; data: string; id?: string }): BatchEvent | undefined {
  const type = message.event ?? "message";
  if (!isBatchEventType(type)) return undefined;
  const data: unknown = JSON.parse(message.data);
  if (typeof data !== "object" || data === null || typeof (data as { batch_id?: unknown }).batch_id !== "string") {
    throw new TypeError(`${type} event without a batch_id: ${message.data.slice(0, 200)}`);
  }
  if (type === "request" && typeof (data as { status?: unknown }).status !== "string") {
    throw new TypeError(`request event without a status: ${message.data.slice(0, 200)}`);
  }
  if (type !== "request" && !Array.isArray((data as { steps?: unknown }).steps)) {
    throw new TypeError(`${type} event without steps: ${message.data.slice(0, 200)}`);
  }
  return { type, id: message.id ?? "", data } as BatchEvent;
}

/** The stream's path for a batch. */
export function eventsPath(batchId: string): string {
  return `/v1/batches/${encodeURIComponent(batchId)}/events`;
}

function backoff(firstMs: number, maxMs: number, attempt: number): number {
  const base = Math.min(maxMs, firstMs * 2 ** Math.max(0, attempt - 1));
  return base / 2 + Math.random() * (base / 2);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });
}

async function readProblem(response: Response) {
  const text = await response.text().catch(() => "");
  try {
    const body: unknown = JSON.parse(text);
    if (isProblem(body)) return body;
  } catch {
    // not JSON: described from the status below
  }
  return problemFromStatus(response.status, response.statusText, text);
}

/** Read the stream with fetch (bearer token in `Authorization`), reconnecting with `Last-Event-ID` after drops. */
export function streamBatchEvents(
  connection: ConnectionOptions,
  batchId: string,
  handlers: BatchEventHandlers,
  options: StreamOptions = {},
): BatchEventSubscription {
  const controller = new AbortController();
  options.signal?.addEventListener("abort", () => controller.abort());
  const fetchImpl = connection.fetch ?? globalThis.fetch;
  const maxRetryMs = options.maxRetryMs ?? 15_000;
  let retryMs = options.retryMs ?? 1_000;
  let lastEventId = options.lastEventId;

  const deliver = (message: EventSourceMessage) => {
    if (message.id !== undefined) lastEventId = message.id;
    try {
      const event = parseBatchEvent(message);
      if (event) handlers.onEvent(event);
    } catch (error) {
      handlers.onError?.(error);
    }
  };

  async function read(body: ReadableStream<Uint8Array>): Promise<void> {
    const parser = createParser({ onEvent: deliver, onRetry: (ms) => (retryMs = ms) });
    const decoder = new TextDecoder();
    const reader = body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        parser.feed(decoder.decode(value, { stream: true }));
      }
    } finally {
      reader.releaseLock();
    }
  }

  async function run(): Promise<void> {
    const url = gatewayUrl(connection.baseUrl, eventsPath(batchId)).toString();
    let attempt = 0;
    while (!controller.signal.aborted) {
      handlers.onState?.(attempt === 0 ? "connecting" : "reconnecting");
      let waitMs: number | undefined;
      try {
        const headers: Record<string, string> = { Accept: "text/event-stream" };
        const token = await resolveToken(connection.token);
        if (token) headers.Authorization = `Bearer ${token}`;
        if (lastEventId !== undefined) headers["Last-Event-ID"] = lastEventId;
        const response = await fetchImpl(url, { headers, signal: controller.signal, cache: "no-store" });
        if (!response.ok || response.body === null) {
          const problem = await readProblem(response);
          handlers.onError?.(new ProblemError(problem));
          if (FINAL_STATUSES.has(response.status)) break;
          const after = retryAfterSeconds(response);
          if (after !== undefined) waitMs = after * 1000;
        } else {
          attempt = 0;
          handlers.onState?.("open");
          await read(response.body);
        }
      } catch (error) {
        if (controller.signal.aborted) break;
        handlers.onError?.(error);
      }
      attempt += 1;
      await sleep(waitMs ?? backoff(retryMs, maxRetryMs, attempt), controller.signal);
    }
    handlers.onState?.("closed");
  }

  const closed = run();
  return {
    close: () => controller.abort(),
    get lastEventId() {
      return lastEventId;
    },
    closed,
  };
}

/** The part of the WHATWG `EventSource` the ticket reader uses (the browser's, or e.g. npm `eventsource` in Node). */
export interface EventSourceLike {
  readonly readyState: number;
  onopen: ((this: never, event: Event) => unknown) | null;
  onerror: ((this: never, event: Event) => unknown) | null;
  addEventListener(type: string, listener: (event: MessageEvent) => void): void;
  close(): void;
}
export type EventSourceConstructor = new (url: string) => EventSourceLike;

export interface TicketStreamOptions extends StreamOptions {
  /** The EventSource implementation; defaults to the global one (browsers). */
  EventSource?: EventSourceConstructor;
}

/** Read the stream with a plain EventSource through a short-lived ticket; a new ticket for every reconnection. */
export function subscribeBatchEvents(
  connection: ConnectionOptions,
  batchId: string,
  handlers: BatchEventHandlers,
  options: TicketStreamOptions = {},
): BatchEventSubscription {
  const found = options.EventSource ?? (globalThis as { EventSource?: EventSourceConstructor }).EventSource;
  if (!found) throw new Error("no EventSource here: pass options.EventSource, or use streamBatchEvents");
  const Source: EventSourceConstructor = found;
  const client = createConductorClient(connection);
  const controller = new AbortController();
  options.signal?.addEventListener("abort", () => controller.abort());
  const maxRetryMs = options.maxRetryMs ?? 15_000;
  const retryMs = options.retryMs ?? 1_000;
  let lastEventId = options.lastEventId;
  let source: EventSourceLike | undefined;
  let attempt = 0;
  let finish: () => void = () => {};
  const closed = new Promise<void>((resolve) => (finish = resolve));

  const deliver = (type: BatchEventType, event: MessageEvent) => {
    if (event.lastEventId) lastEventId = event.lastEventId;
    try {
      const parsed = parseBatchEvent({ event: type, data: String(event.data), id: event.lastEventId });
      if (parsed) handlers.onEvent(parsed);
    } catch (error) {
      handlers.onError?.(error);
    }
  };

  async function open(): Promise<void> {
    handlers.onState?.(attempt === 0 ? "connecting" : "reconnecting");
    let eventsUrl: string;
    try {
      const ticket = unwrap(
        await client.POST("/v1/batches/{batch_id}/events/ticket", {
          params: { path: { batch_id: batchId } },
          signal: controller.signal,
        }),
      );
      eventsUrl = ticket.events_url;
    } catch (error) {
      if (controller.signal.aborted) return;
      handlers.onError?.(error);
      if (error instanceof ProblemError && FINAL_STATUSES.has(error.status)) controller.abort();
      else reconnect();
      return;
    }
    if (controller.signal.aborted) return;
    const url = gatewayUrl(connection.baseUrl, eventsUrl);
    if (lastEventId !== undefined) url.searchParams.set("last_event_id", lastEventId);
    const current = new Source(url.toString());
    source = current;
    current.onopen = () => {
      attempt = 0;
      handlers.onState?.("open");
    };
    current.onerror = () => {
      // The browser would retry with the same (possibly expired) ticket: take over, with a fresh one.
      if (source !== current || controller.signal.aborted) return;
      current.close();
      handlers.onError?.(new Error("event stream interrupted; reconnecting"));
      reconnect();
    };
    for (const type of BATCH_EVENT_TYPES) current.addEventListener(type, (event) => deliver(type, event));
  }

  function reconnect(): void {
    attempt += 1;
    void sleep(backoff(retryMs, maxRetryMs, attempt), controller.signal).then(() => {
      if (!controller.signal.aborted) void open();
    });
  }

  controller.signal.addEventListener("abort", () => {
    source?.close();
    source = undefined;
    handlers.onState?.("closed");
    finish();
  });
  void open();
  return {
    close: () => controller.abort(),
    get lastEventId() {
      return lastEventId;
    },
    closed,
  };
}
