/** The event-stream helpers against the real gateway: snapshot first, request outcomes pushed, resume by id. */
import { EventSource } from "eventsource";
import { afterEach, describe, expect, it } from "vitest";

import {
  createConductorClient,
  ProblemError,
  streamBatchEvents,
  subscribeBatchEvents,
  unwrap,
  type BatchEventSubscription,
  type EventSourceConstructor,
} from "../../src";
import { baseUrl, batchId, Collector, expectedPipeline, isRequest, isSnapshot } from "./support";

const client = createConductorClient({ baseUrl });
const open: BatchEventSubscription[] = [];

afterEach(async () => {
  for (const subscription of open.splice(0)) {
    subscription.close();
    await subscription.closed;
  }
});

async function requestAiFeedback(): Promise<string> {
  const accepted = unwrap(
    await client.POST("/v1/batches/{batch_id}/pipelines", {
      params: { path: { batch_id: batchId } },
      body: { requested_pipeline: "ai_feedback" },
    }),
  );
  return accepted.correlation_id;
}

describe.each([
  ["fetch reader (bearer)", (c: Collector, lastEventId?: string) => streamBatchEvents({ baseUrl }, batchId, c, { lastEventId })],
  [
    "EventSource reader (ticket)",
    (c: Collector, lastEventId?: string) =>
      subscribeBatchEvents({ baseUrl }, batchId, c, {
        lastEventId,
        EventSource: EventSource as unknown as EventSourceConstructor,
      }),
  ],
])("%s", (_name, subscribe) => {
  it("starts with a snapshot and pushes a request's outcome", async () => {
    const events = new Collector();
    open.push(subscribe(events));
    const snapshot = await events.waitFor(isSnapshot);
    expect(events.events[0]).toBe(snapshot);
    expect(snapshot.data.batch_id).toBe(batchId);
    expect(snapshot.data.registered).toBe(true);
    expect(snapshot.id).toMatch(/^\d+$/);

    const correlationId = await requestAiFeedback();
    const resolved = await events.waitFor(isRequest(correlationId, "resolved"));
    expect(resolved.data.final_pipeline).toEqual(expectedPipeline);
    expect(Number(resolved.id)).toBeGreaterThan(Number(snapshot.id));
    expect(events.states).toContain("open");
  });

  it("resumes after the last event id without missing a change", async () => {
    const first = new Collector();
    const subscription = subscribe(first);
    open.push(subscription);
    await first.waitFor(isSnapshot);
    const before = await requestAiFeedback();
    await first.waitFor(isRequest(before, "resolved"));
    const resumeFrom = subscription.lastEventId;
    expect(resumeFrom).toBeDefined();
    subscription.close();
    await subscription.closed;

    // A change while nobody listens, then a resume from the last id seen.
    const missed = await requestAiFeedback();
    const second = new Collector();
    open.push(subscribe(second, resumeFrom));
    const seen = await second.waitFor(isRequest(missed, "resolved"));
    expect(Number(seen.id)).toBeGreaterThan(Number(resumeFrom));
    // Either the events after the id, or (if the gateway cannot replay them) a fresh snapshot first.
    const head = second.events[0]!;
    expect(head.type === "snapshot" || Number(head.id) > Number(resumeFrom)).toBe(true);
  });

  it("stops with a 404 problem for an unknown batch", async () => {
    const events = new Collector();
    const subscription =
      _name.startsWith("fetch")
        ? streamBatchEvents({ baseUrl }, "no-such-batch-for-events", events)
        : subscribeBatchEvents({ baseUrl }, "no-such-batch-for-events", events, {
            EventSource: EventSource as unknown as EventSourceConstructor,
          });
    open.push(subscription);
    await subscription.closed;
    // The last error is the final one (a transient one such as a 429 before it would have been retried).
    const last = events.errors.at(-1);
    expect(last).toBeInstanceOf(ProblemError);
    expect((last as ProblemError).problem.code).toBe("BATCH_NOT_FOUND");
    expect(events.events).toEqual([]);
    expect(events.states.at(-1)).toBe("closed");
  });
});
