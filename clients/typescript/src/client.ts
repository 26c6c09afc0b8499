/** The typed REST client: openapi-fetch over the types openapi-typescript generated from the gateway's OpenAPI. */
import createClient, { type Client, type Middleware } from "openapi-fetch";

import type { components, paths } from "./schema";

export type { components, paths };
export type Schemas = components["schemas"];
export type BatchStatusView = Schemas["BatchStatusView"];
export type StepProgress = Schemas["StepProgress"];
export type PipelineRequestBody = Schemas["PipelineRequestBody"];
export type RequestedPipeline = PipelineRequestBody["requested_pipeline"];
export type PipelineAccepted = Schemas["PipelineAccepted"];
export type PipelineRequestOutcome = Schemas["PipelineRequestOutcome"];
export type PipelineCatalogView = Schemas["PipelineCatalogView"];
export type Problem = Schemas["Problem"];
export type FieldError = Schemas["FieldError"];

/** A bearer token, or a function that returns the current one (refreshed tokens); nothing in auth mode `none`. */
export type TokenSource = string | (() => string | undefined | Promise<string | undefined>) | undefined;

export interface ConnectionOptions {
  /** The gateway's base URL, e.g. `http://127.0.0.1:4001`; empty for the page's own origin (browser only). */
  baseUrl?: string;
  /** Sent as `Authorization: Bearer <token>` (auth mode `jwt`). */
  token?: TokenSource;
  /** A fetch implementation (defaults to the global one). */
  fetch?: typeof globalThis.fetch;
}

export type ConductorClient = Client<paths>;

/** Return the current bearer token of `source`, if any. */
export async function resolveToken(source: TokenSource): Promise<string | undefined> {
  return typeof source === "function" ? await source() : source;
}

/** Create the typed client: `client.GET("/v1/batches/{batch_id}/status", { params: { path: { batch_id } } })`. */
export function createConductorClient(options: ConnectionOptions = {}): ConductorClient {
  const fetchImpl = options.fetch;
  const client = createClient<paths>({
    baseUrl: options.baseUrl ?? "",
    ...(fetchImpl ? { fetch: (request: Request) => fetchImpl(request) } : {}),
  });
  if (options.token !== undefined) {
    const bearer: Middleware = {
      async onRequest({ request }) {
        const token = await resolveToken(options.token);
        if (token) request.headers.set("Authorization", `Bearer ${token}`);
        return request;
      },
    };
    client.use(bearer);
  }
  return client;
}

/** Resolve `path` (e.g. an answer's `status_url`) under the gateway's base URL (kept whole, as openapi-fetch does). */
export function gatewayUrl(baseUrl: string | undefined, path: string): URL {
  if (/^https?:\/\//.test(path)) return new URL(path);
  if (baseUrl) return new URL(`${baseUrl.replace(/\/+$/, "")}${path.startsWith("/") ? "" : "/"}${path}`);
  const here = (globalThis as { location?: { href: string } }).location?.href;
  if (!here) throw new Error("baseUrl is required outside a browser");
  return new URL(path, here);
}
