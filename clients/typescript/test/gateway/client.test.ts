/** The generated client against the real gateway: typed calls, answers and problem documents. */
import { describe, expect, it } from "vitest";

import { createConductorClient, describeProblem, ProblemError, unwrap, type PipelineRequestBody } from "../../src";
import { baseUrl, batchId, expectedPipeline, expectedPruned } from "./support";

const client = createConductorClient({ baseUrl });

describe("the typed client on a real gateway", () => {
  it("lists the pipeline catalog", async () => {
    const catalog = unwrap(await client.GET("/v1/pipelines"));
    expect(catalog.pipelines.map((p) => p.name)).toContain("ai_feedback");
    expect(catalog.steps).toContain("spellcheck");
  });

  it("reads a batch's status", async () => {
    const status = unwrap(await client.GET("/v1/batches/{batch_id}/status", { params: { path: { batch_id: batchId } } }));
    expect(status.batch_id).toBe(batchId);
    expect(status.registered).toBe(true);
    expect((status.steps ?? []).find((s) => s.step === "spellcheck")?.status).toBe("completed");
  });

  it("requests a pipeline and follows it to its outcome", async () => {
    const accepted = unwrap(
      await client.POST("/v1/batches/{batch_id}/pipelines", {
        params: { path: { batch_id: batchId } },
        body: { requested_pipeline: "ai_feedback" },
      }),
    );
    expect(accepted.status).toBe("accepted");
    expect(accepted.status_url).toBe(`/v1/batches/${batchId}/pipelines/${accepted.correlation_id}`);
    const outcome = async () =>
      unwrap(
        await client.GET("/v1/batches/{batch_id}/pipelines/{correlation_id}", {
          params: { path: { batch_id: batchId, correlation_id: accepted.correlation_id } },
        }),
      );
    await expect.poll(async () => (await outcome()).status, { timeout: 30_000, interval: 100 }).toBe("resolved");
    const resolved = await outcome();
    expect(resolved.final_pipeline).toEqual(expectedPipeline);
    expect(resolved.pruned_steps).toEqual(expectedPruned);
    expect((resolved.steps ?? []).map((s) => s.name)).toEqual(expectedPipeline);
  });

  it("hands back a 404 problem for an unknown batch", async () => {
    const answer = await client.GET("/v1/batches/{batch_id}/status", {
      params: { path: { batch_id: "no-such-batch-for-the-ts-client" } },
    });
    expect(answer.response.status).toBe(404);
    expect(answer.response.headers.get("content-type")).toBe("application/problem+json");
    expect(answer.error?.code).toBe("BATCH_NOT_FOUND");
    expect(() => unwrap(answer)).toThrow(ProblemError);
  });

  it("types requested_pipeline as the names of pipelines.yaml", () => {
    const valid: PipelineRequestBody = { requested_pipeline: "ai_feedback" };
    // @ts-expect-error "spelcheck" is neither a pipeline nor a step: tsc --noEmit fails if the enum goes missing
    const misspelt: PipelineRequestBody = { requested_pipeline: "spelcheck" };
    expect([valid.requested_pipeline, misspelt.requested_pipeline]).toEqual(["ai_feedback", "spelcheck"]);
  });

  it("hands back a 422 problem naming the field", async () => {
    const answer = await client.POST("/v1/batches/{batch_id}/pipelines", {
      params: { path: { batch_id: batchId } },
      body: { requested_pipeline: "spelcheck" } as never,
    });
    expect(answer.response.status).toBe(422);
    expect(answer.error?.errors?.map((e) => e.field)).toContain("requested_pipeline");
    expect(describeProblem(answer.error!)).toMatch(/requested_pipeline: /);
  });

  it("sends the bearer token it is given", async () => {
    const seen: string[] = [];
    const withToken = createConductorClient({
      baseUrl,
      token: () => "a-token",
      fetch: async (input, init) => {
        seen.push(new Request(input, init).headers.get("Authorization") ?? "");
        return fetch(input, init);
      },
    });
    unwrap(await withToken.GET("/v1/pipelines"));
    expect(seen).toEqual(["Bearer a-token"]);
  });
});
