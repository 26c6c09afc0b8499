import { describe, expect, it } from "vitest";

import { gatewayUrl, resolveToken } from "../../src/client";

describe("gatewayUrl", () => {
  it.each([
    ["http://gw:4001", "/v1/x?ticket=t", "http://gw:4001/v1/x?ticket=t"],
    ["http://gw:4001/", "/v1/x", "http://gw:4001/v1/x"],
    ["https://host/conductor", "/v1/x", "https://host/conductor/v1/x"],
    ["https://host/conductor/", "v1/x", "https://host/conductor/v1/x"],
    ["http://gw:4001", "https://elsewhere/v1/x", "https://elsewhere/v1/x"],
  ])("joins %s and %s", (base, path, expected) => {
    expect(gatewayUrl(base, path).toString()).toBe(expected);
  });

  it("needs a base outside a browser", () => {
    expect(() => gatewayUrl("", "/v1/x")).toThrow(/baseUrl is required/);
  });
});

describe("resolveToken", () => {
  it("takes a string, a function or nothing", async () => {
    expect(await resolveToken("t")).toBe("t");
    expect(await resolveToken(async () => "u")).toBe("u");
    expect(await resolveToken(undefined)).toBeUndefined();
  });
});
