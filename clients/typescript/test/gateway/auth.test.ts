/** Auth mode jwt on a real gateway: the bearer token reaches REST calls, the fetch reader and the ticket request. */
import { EventSource } from "eventsource";
import { afterEach, describe, expect, it } from "vitest";

import {
  createConductorClient,
  ProblemError,
  streamBatchEvents,
  subscribeBatchEvents,
  type BatchEventSubscription,
  type ConnectionOptions,
  type EventSourceConstructor,
} from "../../src";
import { batchId, Collector, isSnapshot } from "./support";

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (tests/functional/test_clients.py sets it)`);
  return value;
}

const baseUrl = required("CONDUCTOR_JWT_GATEWAY_URL");
const owner = required("CONDUCTOR_TEST_TOKEN"); // sub = the demo batches' owner
const stranger = required("CONDUCTOR_TEST_OTHER_TOKEN");
const open: BatchEventSubscription[] = [];

afterEach(async () => {
  for (const subscription of open.splice(0)) {
    subscription.close();
    await subscription.closed;
  }
});

describe("REST calls in auth mode jwt", () => {
  it.each([
    ["the owner", owner, 200, undefined],
    ["nobody", undefined, 401, "AUTHENTICATION_REQUIRED"],
    ["another user", stranger, 403, "FORBIDDEN"],
  ])("%s reading the status gets %s", async (_who, token, status, code) => {
    const client = createConductorClient({ baseUrl, token });
    const answer = await client.GET("/v1/batches/{batch_id}/status", { params: { path: { batch_id: batchId } } });
    expect(answer.response.status).toBe(status);
    expect(answer.error?.code).toBe(code);
  });
});

const readers = [
  ["fetch reader", (connection: ConnectionOptions, c: Collector) => streamBatchEvents(connection, batchId, c)],
  [
    "EventSource reader",
    (connection: ConnectionOptions, c: Collector) =>
      subscribeBatchEvents(connection, batchId, c, { EventSource: EventSource as unknown as EventSourceConstructor }),
  ],
] as const;

describe.each(readers)("the %s in auth mode jwt", (_name, subscribe) => {
  it("opens the owner's stream with the bearer token", async () => {
    const events = new Collector();
    open.push(subscribe({ baseUrl, token: () => owner }, events));
    const snapshot = await events.waitFor(isSnapshot);
    expect(snapshot.data.batch_id).toBe(batchId);
  });

  it.each([
    ["without a token", undefined, 401],
    ["for another user", stranger, 403],
  ])("stops with a problem %s", async (_case, token, status) => {
    const events = new Collector();
    const subscription = subscribe({ baseUrl, token }, events);
    open.push(subscription);
    await subscription.closed;
    expect(events.events).toEqual([]);
    expect((events.errors.at(-1) as ProblemError).status).toBe(status);
  });
});
