import type { BatchEvent, PipelineRequestOutcome } from "@batch-conductor/client";
import { describe, expect, it } from "vitest";

import { initialView, LOG_SIZE, reduce, type BatchView } from "./batchView";

const CID = "1b8315aa-c3c0-48da-a286-5f5ec97b5cc5";
const steps = [{ step: "spellcheck", status: "completed" as const, succeeded: 3, failed: 0, pending: 0 }];

function snapshot(id: string, recent: unknown[] = []): BatchEvent {
  return {
    type: "snapshot",
    id,
    data: { batch_id: "b", registered: true, expected_essay_count: 3, essay_count: 3, steps, recent_requests: recent },
  } as BatchEvent;
}

function request(id: string, status: "pending" | "resolved" | "failed", extra: Partial<PipelineRequestOutcome> = {}) {
  const data = { batch_id: "b", correlation_id: CID, status, requested_pipeline: "ai_feedback", ...extra };
  return { type: "request", id, data } as BatchEvent;
}

function fold(...events: BatchEvent[]): BatchView {
  return events.reduce((view, event) => reduce(view, { kind: "event", event }), initialView);
}

describe("the page's batch view", () => {
  it("takes status and kept requests from a snapshot", () => {
    const kept = {
      client_correlation_id: CID,
      requested_pipeline: "nlp",
      requested_at: "2026-12-01T10:00:00Z",
      status: "resolved",
      final_pipeline: ["nlp"],
    };
    const view = fold(snapshot("3", [kept]));
    expect(view.status?.steps).toEqual(steps);
    expect(view.requests).toMatchObject([{ correlation_id: CID, status: "resolved", final_pipeline: ["nlp"] }]);
    expect(view.lastEventId).toBe("3");
  });

  it("shows a request pending, then resolved, newest first", () => {
    let view = fold(snapshot("1"), request("2", "pending"));
    expect(view.requests.map((r) => r.status)).toEqual(["pending"]);
    view = reduce(view, { kind: "event", event: request("3", "resolved", { final_pipeline: ["nlp", "ai_feedback"] }) });
    expect(view.requests).toHaveLength(1);
    expect(view.requests[0]?.final_pipeline).toEqual(["nlp", "ai_feedback"]);
    const other = { ...request("4", "pending"), data: { batch_id: "b", correlation_id: "other", status: "pending" } };
    view = reduce(view, { kind: "event", event: other as BatchEvent });
    expect(view.requests.map((r) => r.correlation_id)).toEqual(["other", CID]);
  });

  it("never turns an outcome back into pending (the POST's answer may arrive after the push)", () => {
    let view = fold(snapshot("1"), request("2", "resolved"));
    view = reduce(view, {
      kind: "accepted",
      accepted: {
        status: "accepted",
        batch_id: "b",
        requested_pipeline: "ai_feedback",
        correlation_id: CID,
        status_url: "",
        batch_status_url: "",
      },
    });
    expect(view.requests.map((r) => r.status)).toEqual(["resolved"]);
  });

  it("updates the steps on progress and keeps a short log", () => {
    const progressed = steps.map((s) => ({ ...s, step: "nlp", status: "in_progress" as const }));
    let view = fold(snapshot("1"), { type: "progress", id: "2", data: { batch_id: "b", steps: progressed } });
    expect(view.status?.steps).toEqual(progressed);
    expect(view.log[0]).toEqual({ id: "2", type: "progress", text: "nlp in_progress" });
    for (let i = 3; i < 20; i++) view = reduce(view, { kind: "event", event: request(String(i), "pending") });
    expect(view.log).toHaveLength(LOG_SIZE);
    expect(view.log[0]?.id).toBe("19");
    expect(view.eventsSeen).toBe(19);
  });
});
