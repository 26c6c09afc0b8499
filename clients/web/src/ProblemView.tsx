import type { Problem } from "@batch-conductor/client";

/** An RFC 9457 problem worded for a person: what went wrong, which fields, and the id to quote to support. */
export function ProblemView({ problem, context }: { problem: Problem; context: string }) {
  return (
    <div className="problem" role="alert" data-testid="problem" data-code={problem.code}>
      <strong>
        {context}: {problem.title}
      </strong>
      {problem.detail && problem.detail !== problem.title && <p>{problem.detail}</p>}
      {(problem.errors ?? []).length > 0 && (
        <ul>
          {(problem.errors ?? []).map((e) => (
            <li key={`${e.location}.${e.field}`}>
              <code>{e.field}</code>: {e.message}
            </li>
          ))}
        </ul>
      )}
      <small>
        {problem.code} · HTTP {problem.status}
        {problem.correlation_id && !problem.correlation_id.startsWith("00000000") && (
          <> · reference {problem.correlation_id}</>
        )}
      </small>
    </div>
  );
}
