/** The page's model of one watched batch, folded from the event stream (pure: a reducer and its actions). */
import type {
  BatchEvent,
  BatchStatusView,
  PipelineAccepted,
  PipelineRequestOutcome,
  Problem,
  Schemas,
  StreamState,
} from "@batch-conductor/client";

/** One line of the page's event log. */
export interface LoggedEvent {
  id: string;
  type: BatchEvent["type"];
  text: string;
}

/** Events kept in the log, newest first. */
export const LOG_SIZE = 8;

export interface BatchView {
  status: BatchStatusView | null;
  /** Newest first. */
  requests: PipelineRequestOutcome[];
  lastEventId: string | undefined;
  eventsSeen: number;
  log: LoggedEvent[];
  streamState: StreamState;
  streamProblem: Problem | null;
}

export type BatchAction =
  | { kind: "reset" }
  | { kind: "event"; event: BatchEvent }
  | { kind: "state"; state: StreamState }
  | { kind: "problem"; problem: Problem | null }
  | { kind: "accepted"; accepted: PipelineAccepted };

export const initialView: BatchView = {
  status: null,
  requests: [],
  lastEventId: undefined,
  eventsSeen: 0,
  log: [],
  streamState: "closed",
  streamProblem: null,
};

type Kept = Schemas["RequestOutcome"];

function fromKept(batchId: string, kept: Kept): PipelineRequestOutcome {
  return {
    batch_id: batchId,
    correlation_id: kept.client_correlation_id,
    status: kept.status,
    requested_pipeline: kept.requested_pipeline,
    user_id: kept.user_id ?? null,
    is_retry: kept.is_retry ?? false,
    requested_at: kept.requested_at,
    final_pipeline: kept.final_pipeline ?? [],
    pruned_steps: kept.pruned_steps ?? [],
    steps: kept.steps ?? [],
    analysis_summary: kept.analysis_summary ?? null,
    reason_code: kept.reason_code ?? null,
    message: kept.message ?? null,
  };
}

/** Put `outcome` in the list (newest first); a known request never goes back from an outcome to pending. */
function upsert(requests: PipelineRequestOutcome[], outcome: PipelineRequestOutcome): PipelineRequestOutcome[] {
  const index = requests.findIndex((r) => r.correlation_id === outcome.correlation_id);
  if (index < 0) return [outcome, ...requests];
  const known = requests[index]!;
  if (outcome.status === "pending" && known.status !== "pending") return requests;
  const merged = { ...known, ...outcome, requested_pipeline: outcome.requested_pipeline ?? known.requested_pipeline };
  return requests.map((r, i) => (i === index ? merged : r));
}

/** Say in a few words what an event brought. */
export function summarise(event: BatchEvent): string {
  switch (event.type) {
    case "snapshot":
      return `${(event.data.steps ?? []).length} steps, ${(event.data.recent_requests ?? []).length} recent requests`;
    case "request": {
      const steps = event.data.status === "resolved" ? `: ${(event.data.final_pipeline ?? []).join(" → ") || "nothing"}` : "";
      const name = event.data.requested_pipeline ?? `request ${event.data.correlation_id.slice(0, 8)}`;
      return `${name} ${event.data.status}${steps}`;
    }
    case "progress":
      return event.data.steps.map((s) => `${s.step} ${s.status}`).join(", ");
  }
}

export function reduce(view: BatchView, action: BatchAction): BatchView {
  switch (action.kind) {
    case "reset":
      return initialView;
    case "state":
      return { ...view, streamState: action.state, streamProblem: action.state === "open" ? null : view.streamProblem };
    case "problem":
      return { ...view, streamProblem: action.problem };
    case "accepted": {
      const a = action.accepted;
      const pending: PipelineRequestOutcome = {
        batch_id: a.batch_id,
        correlation_id: a.correlation_id,
        status: "pending",
        requested_pipeline: a.requested_pipeline,
      };
      return { ...view, requests: upsert(view.requests, pending) };
    }
    case "event": {
      const { event } = action;
      const logged = { id: event.id, type: event.type, text: summarise(event) };
      const seen = {
        ...view,
        lastEventId: event.id || view.lastEventId,
        eventsSeen: view.eventsSeen + 1,
        log: [logged, ...view.log].slice(0, LOG_SIZE),
      };
      if (event.type === "snapshot") {
        const kept = (event.data.recent_requests ?? []).map((r) => fromKept(event.data.batch_id, r)).reverse();
        let requests = view.requests;
        for (const outcome of kept.slice().reverse()) requests = upsert(requests, outcome);
        return { ...seen, status: event.data, requests };
      }
      if (event.type === "request") return { ...seen, requests: upsert(view.requests, event.data) };
      return { ...seen, status: view.status ? { ...view.status, steps: event.data.steps } : view.status };
    }
  }
}
