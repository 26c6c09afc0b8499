/** What the gateway tests share: the real gateway's URL (set by tests/functional/test_clients.py) and a collector. */
import { expect } from "vitest";

import type { BatchEvent, BatchEventHandlers, StreamState } from "../../src";

const url = process.env.CONDUCTOR_GATEWAY_URL;
if (!url) {
  throw new Error(
    "CONDUCTOR_GATEWAY_URL is not set: these tests run against a real gateway " +
      "(pytest tests/functional/test_clients.py starts one with demo batches and runs them)",
  );
}
export const baseUrl: string = url;
/** A demo batch (conductor/demo.py): 3 essays, spellcheck and nlp complete; ai_feedback resolves to ai_feedback. */
export const batchId = "demo-analysed";
export const expectedPipeline = ["ai_feedback"];
export const expectedPruned = ["spellcheck", "nlp"];

/** Handlers that keep every event, error and state change, with a way to wait for one. */
export class Collector implements BatchEventHandlers {
  events: BatchEvent[] = [];
  errors: unknown[] = [];
  states: StreamState[] = [];

  onEvent = (event: BatchEvent) => {
    this.events.push(event);
  };
  onError = (error: unknown) => {
    this.errors.push(error);
  };
  onState = (state: StreamState) => {
    this.states.push(state);
  };

  /** Wait (deadline) for an event matching `match`; return it. */
  async waitFor<T extends BatchEvent>(match: (event: BatchEvent) => event is T, timeout = 30_000): Promise<T> {
    await expect.poll(() => this.events.some(match), { timeout, interval: 50 }).toBe(true);
    return this.events.find(match) as T;
  }
}

export function isRequest(correlationId: string, status: string) {
  return (event: BatchEvent): event is Extract<BatchEvent, { type: "request" }> =>
    event.type === "request" && event.data.correlation_id === correlationId && event.data.status === status;
}

export function isSnapshot(event: BatchEvent): event is Extract<BatchEvent, { type: "snapshot" }> {
  return event.type === "snapshot";
}
