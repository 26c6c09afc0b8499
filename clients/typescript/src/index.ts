/** Batch Conductor's typed client: REST calls (generated types), problem documents, and the batch event stream. */
export * from "./client";
export * from "./events";
export * from "./problem";
