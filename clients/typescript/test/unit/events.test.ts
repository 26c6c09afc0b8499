import { describe, expect, it } from "vitest";

import { eventsPath, parseBatchEvent } from "../../src/events";

const snapshot = {
  batch_id: "b-1",
  registered: true,
  user_id: "dev-user",
  expected_essay_count: 2,
  essay_count: 2,
  steps: [{ step: "spellcheck", status: "completed", succeeded: 2, failed: 0, pending: 0 }],
  recent_requests: [],
};

describe("parseBatchEvent", () => {
  it("types a snapshot with its id", () => {
    const event = parseBatchEvent({ event: "snapshot", id: "7", data: JSON.stringify(snapshot) });
    expect(event?.type).toBe("snapshot");
    expect(event?.id).toBe("7");
    if (event?.type !== "snapshot") throw new Error("not a snapshot");
    expect(event.data.steps?.[0]?.status).toBe("completed");
  });

  it("types a request outcome", () => {
    const data = { batch_id: "b-1", correlation_id: "1b8315aa-c3c0-48da-a286-5f5ec97b5cc5", status: "resolved" };
    const event = parseBatchEvent({ event: "request", id: "8", data: JSON.stringify(data) });
    expect(event).toEqual({ type: "request", id: "8", data });
  });

  it("types a progress change", () => {
    const data = { batch_id: "b-1", steps: snapshot.steps };
    expect(parseBatchEvent({ event: "progress", id: "9", data: JSON.stringify(data) })?.type).toBe("progress");
  });

  it("ignores event types it does not know (newer gateways may add some)", () => {
    expect(parseBatchEvent({ event: "something-new", data: "{}" })).toBeUndefined();
    expect(parseBatchEvent({ data: "{}" })).toBeUndefined();
  });

  it.each([
    ["snapshot", "not json", SyntaxError],
    ["snapshot", JSON.stringify({ steps: [] }), TypeError],
    ["request", JSON.stringify({ batch_id: "b-1" }), TypeError],
    ["progress", JSON.stringify({ batch_id: "b-1" }), TypeError],
  ])("refuses a malformed %s event", (event, data, error) => {
    expect(() => parseBatchEvent({ event, data })).toThrow(error);
  });
});

describe("eventsPath", () => {
  it("escapes the batch id", () => {
    expect(eventsPath("a/b c")).toBe("/v1/batches/a%2Fb%20c/events");
  });
});
