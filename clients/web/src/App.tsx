import {
  createConductorClient,
  ProblemError,
  problemFromStatus,
  streamBatchEvents,
  subscribeBatchEvents,
  unwrap,
  type PipelineCatalogView,
  type PipelineRequestOutcome,
  type Problem,
  type RequestedPipeline,
  type StepProgress,
  type BatchEvent,
  type StreamState,
} from "@batch-conductor/client";
import { useEffect, useMemo, useReducer, useState, type FormEvent } from "react";

import { initialView, reduce, type BatchView } from "./batchView";
import { ProblemView } from "./ProblemView";

// Same origin as the gateway by default (it serves this page at /app/); VITE_GATEWAY_URL points elsewhere.
const baseUrl: string = import.meta.env.VITE_GATEWAY_URL ?? "";
const query = new URLSearchParams(window.location.search);
// `?transport=fetch` reads the stream with fetch + bearer; the default is an EventSource opened with a ticket.
const transport = query.get("transport") === "fetch" ? "fetch" : "eventsource";

function asProblem(error: unknown): Problem {
  if (error instanceof ProblemError) return error.problem;
  return problemFromStatus(0, "The gateway could not be reached", String(error));
}

export function App() {
  const [token, setToken] = useState(() => sessionStorage.getItem("conductor-token") ?? "");
  const [draft, setDraft] = useState(() => query.get("batch") ?? "");
  const [batchId, setBatchId] = useState(() => query.get("batch") ?? "");
  const [catalog, setCatalog] = useState<PipelineCatalogView | null>(null);
  const [catalogProblem, setCatalogProblem] = useState<Problem | null>(null);
  const [pipeline, setPipeline] = useState<RequestedPipeline>("ai_feedback" as RequestedPipeline);
  const [sending, setSending] = useState(false);
  const [requestProblem, setRequestProblem] = useState<Problem | null>(null);
  const [view, dispatch] = useReducer(reduce, initialView);

  const connection = useMemo(() => ({ baseUrl, token: token || undefined }), [token]);
  const client = useMemo(() => createConductorClient(connection), [connection]);

  useEffect(() => {
    client
      .GET("/v1/pipelines")
      .then((answer) => setCatalog(unwrap(answer)))
      .catch((error: unknown) => setCatalogProblem(asProblem(error)));
  }, [client]);

  // Watch the chosen batch: every change arrives through the event stream; nothing here polls.
  useEffect(() => {
    dispatch({ kind: "reset" });
    setRequestProblem(null);
    if (!batchId) return;
    const url = new URL(window.location.href);
    url.searchParams.set("batch", batchId);
    window.history.replaceState(null, "", url);
    const handlers = {
      onEvent: (event: BatchEvent) =>
        dispatch({ kind: "event", event }),
      onState: (state: StreamState) => dispatch({ kind: "state", state }),
      onError: (error: unknown) => {
        if (error instanceof ProblemError) dispatch({ kind: "problem", problem: error.problem });
      },
    };
    const subscription =
      transport === "fetch"
        ? streamBatchEvents(connection, batchId, handlers)
        : subscribeBatchEvents(connection, batchId, handlers);
    return () => subscription.close();
  }, [batchId, connection]);

  function watch(event: FormEvent) {
    event.preventDefault();
    setBatchId(draft.trim());
  }

  async function request(event: FormEvent) {
    event.preventDefault();
    setSending(true);
    setRequestProblem(null);
    try {
      const accepted = unwrap(
        await client.POST("/v1/batches/{batch_id}/pipelines", {
          params: { path: { batch_id: batchId } },
          body: { requested_pipeline: pipeline },
        }),
      );
      dispatch({ kind: "accepted", accepted });
    } catch (error) {
      setRequestProblem(asProblem(error));
    } finally {
      setSending(false);
    }
  }

  const choices = catalog ? [...catalog.pipelines.map((p) => p.name), ...catalog.steps] : [];

  return (
    <main>
      <header>
        <h1>Batch Conductor</h1>
        <span className="muted">
          reference page · <a href="/docs">API docs</a>
        </span>
      </header>

      <form className="row" onSubmit={watch}>
        <label>
          Batch
          <input
            name="batch"
            data-testid="batch-input"
            value={draft}
            placeholder="e.g. demo-spellchecked"
            onChange={(e) => setDraft(e.target.value)}
          />
        </label>
        <button type="submit" data-testid="watch">
          Watch
        </button>
        <label className="token">
          Bearer token (auth mode jwt)
          <input
            name="token"
            type="password"
            value={token}
            onChange={(e) => {
              setToken(e.target.value);
              sessionStorage.setItem("conductor-token", e.target.value);
            }}
          />
        </label>
      </form>
      {catalogProblem && <ProblemView problem={catalogProblem} context="Pipeline catalog" />}

      {batchId && (
        <>
          <p className="status-line" data-testid="stream" data-state={view.streamState}>
            <span className={`dot ${view.streamState}`} /> {batchId}: stream {view.streamState} ({transport}) ·{" "}
            {view.eventsSeen} events · last event id {view.lastEventId ?? "–"}
          </p>
          {view.streamProblem && <ProblemView problem={view.streamProblem} context="Watching the batch" />}

          <section>
            <h2>Steps</h2>
            <StepsTable status={view.status?.steps ?? []} essays={view.status?.expected_essay_count ?? 0} />
          </section>

          <section>
            <h2>Request a pipeline</h2>
            <form className="row" onSubmit={request}>
              <select
                data-testid="pipeline"
                value={pipeline}
                onChange={(e) => setPipeline(e.target.value as RequestedPipeline)}
              >
                {choices.map((name) => (
                  <option key={name} value={name}>
                    {name}
                  </option>
                ))}
              </select>
              <button type="submit" data-testid="request" disabled={sending || !catalog}>
                Request
              </button>
            </form>
            {requestProblem && <ProblemView problem={requestProblem} context="Request refused" />}
            <RequestList requests={view.requests} />
          </section>

          <section>
            <h2>Events pushed by the gateway</h2>
            <EventLog view={view} />
          </section>
        </>
      )}
    </main>
  );
}

function StepsTable({ status, essays }: { status: StepProgress[]; essays: number }) {
  if (status.length === 0) return <p className="muted">No step has started for this batch yet ({essays} essays).</p>;
  return (
    <table data-testid="steps">
      <thead>
        <tr>
          <th>step</th>
          <th>status</th>
          <th>succeeded</th>
          <th>failed</th>
          <th>pending</th>
        </tr>
      </thead>
      <tbody>
        {status.map((s) => (
          <tr key={s.step} data-step={s.step}>
            <td>{s.step}</td>
            <td>
              <span className={`badge ${s.status}`}>{s.status}</span>
            </td>
            <td>{s.succeeded}</td>
            <td>{s.failed}</td>
            <td>{s.pending}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function RequestList({ requests }: { requests: PipelineRequestOutcome[] }) {
  if (requests.length === 0) return <p className="muted">No requests yet.</p>;
  return (
    <ol className="requests" data-testid="requests">
      {requests.map((r) => (
        <li key={r.correlation_id} data-correlation-id={r.correlation_id} data-status={r.status}>
          <span className={`badge ${r.status}`}>{r.status}</span> <strong>{r.requested_pipeline ?? "?"}</strong>
          {r.status === "resolved" && (
            <span className="steps" data-testid="final-pipeline">
              {(r.final_pipeline ?? []).length ? (r.final_pipeline ?? []).join(" → ") : "nothing left to run"}
            </span>
          )}
          {r.status === "resolved" && (r.pruned_steps ?? []).length > 0 && (
            <span className="muted"> (already done: {(r.pruned_steps ?? []).join(", ")})</span>
          )}
          {r.status === "failed" && (
            <span className="failure">
              {r.reason_code}: {r.message}
            </span>
          )}
          <small className="muted"> {r.correlation_id}</small>
        </li>
      ))}
    </ol>
  );
}

function EventLog({ view }: { view: BatchView }) {
  if (view.log.length === 0) return <p className="muted">Waiting for the first event…</p>;
  return (
    <ol className="events" data-testid="events">
      {view.log.map((e, i) => (
        <li key={`${e.id}-${i}`} data-type={e.type}>
          <code>id {e.id}</code> <span className="badge">{e.type}</span> {e.text}
        </li>
      ))}
    </ol>
  );
}
