import { describe, expect, it } from "vitest";

import { describeProblem, isProblem, ProblemError, unwrap } from "../../src/problem";

const problem = {
  type: "https://batch-conductor/problems/validation-error",
  title: "Unprocessable Content",
  status: 422,
  detail: "The request is invalid; see `errors`.",
  instance: "urn:uuid:1b8315aa-c3c0-48da-a286-5f5ec97b5cc5",
  code: "VALIDATION_ERROR",
  correlation_id: "1b8315aa-c3c0-48da-a286-5f5ec97b5cc5",
  errors: [{ field: "requested_pipeline", location: "body" as const, message: "Field required", type: "missing" }],
};

describe("problems", () => {
  it("are recognised", () => {
    expect(isProblem(problem)).toBe(true);
    expect(isProblem({ detail: "x" })).toBe(false);
    expect(isProblem(null)).toBe(false);
  });

  it("are worded for a person, one line per field", () => {
    expect(describeProblem(problem)).toBe(
      "Unprocessable Content: The request is invalid; see `errors`.\nrequested_pipeline: Field required",
    );
  });

  it("are thrown by unwrap with their status", () => {
    const response = new Response(JSON.stringify(problem), { status: 422 });
    let thrown: unknown;
    try {
      unwrap({ error: problem, response });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ProblemError);
    expect((thrown as ProblemError).status).toBe(422);
    expect((thrown as ProblemError).problem.code).toBe("VALIDATION_ERROR");
  });

  it("are made up from the status when the body is none", () => {
    const response = new Response("<html>bad gateway</html>", { status: 502, statusText: "Bad Gateway" });
    expect(() => unwrap({ error: "<html>bad gateway</html>", response })).toThrow(/Bad Gateway/);
  });

  it("let data through", () => {
    expect(unwrap({ data: { ok: 1 }, response: new Response("{}", { status: 200 }) })).toEqual({ ok: 1 });
  });
});
