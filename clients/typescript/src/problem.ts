/** RFC 9457 problem documents (`application/problem+json`) as the gateway sends them, and their wording for people. */
import type { FieldError, Problem } from "./client";

/** Return whether `value` looks like one of the gateway's problem documents. */
export function isProblem(value: unknown): value is Problem {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.status === "number" && typeof v.title === "string" && typeof v.code === "string";
}

/** Thrown by `unwrap` and the event helpers when the gateway answers with a problem document. */
export class ProblemError extends Error {
  readonly problem: Problem;
  readonly status: number;

  constructor(problem: Problem) {
    super(describeProblem(problem));
    this.name = "ProblemError";
    this.problem = problem;
    this.status = problem.status;
  }
}

/** Build a problem for an answer that carried none (e.g. a proxy's HTML error page). */
export function problemFromStatus(status: number, statusText: string, body?: string): Problem {
  return {
    type: "about:blank",
    title: statusText || `HTTP ${status}`,
    status,
    detail: body?.trim().slice(0, 200) || `The gateway answered HTTP ${status}.`,
    instance: "",
    code: `HTTP_${status}`,
    correlation_id: "00000000-0000-0000-0000-000000000000",
    errors: [],
  };
}

function fieldLine(error: FieldError): string {
  return `${error.field}: ${error.message}`;
}

/** Word a problem for a person: title and detail, then one line per invalid field. */
export function describeProblem(problem: Problem): string {
  const head = problem.detail && problem.detail !== problem.title ? `${problem.title}: ${problem.detail}` : problem.title;
  const fields = (problem.errors ?? []).map(fieldLine);
  return [head, ...fields].join("\n");
}

/** The seconds a 429 or 503 asks the caller to wait (`Retry-After`), if it says. */
export function retryAfterSeconds(response: Response): number | undefined {
  const value = response.headers.get("Retry-After");
  if (value === null) return undefined;
  const seconds = Number(value);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : undefined;
}

/** Return `data` of an openapi-fetch answer, or throw a `ProblemError` built from its error body. */
export function unwrap<T>(answer: { data?: T; error?: unknown; response: Response }): T {
  const { data, error, response } = answer;
  if (response.ok && data !== undefined) return data;
  if (isProblem(error)) throw new ProblemError(error);
  throw new ProblemError(problemFromStatus(response.status, response.statusText, typeof error === "string" ? error : ""));
}
