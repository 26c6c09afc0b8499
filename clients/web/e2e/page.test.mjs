// The reference page in Debian's Chromium (playwright-core; no browser download): watch a demo batch, request
// ai_feedback, and see it resolve with its steps through the event stream, without a reload and without polling.
// Then the platform completes the batch's `nlp` step (the Python test that runs this file publishes the completion
// events once CONDUCTOR_E2E_SIGNAL_DIR/resolved appears) and the step's row turns `completed` through the push.
// Run by tests/functional/test_clients.py against a real gateway: CONDUCTOR_GATEWAY_URL, CONDUCTOR_E2E_SIGNAL_DIR,
// CONDUCTOR_SCREENSHOT (where to save the picture), CHROMIUM (the browser binary).
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { chromium } from "playwright-core";

const gateway = process.env.CONDUCTOR_GATEWAY_URL;
const screenshot = process.env.CONDUCTOR_SCREENSHOT;
const signals = process.env.CONDUCTOR_E2E_SIGNAL_DIR;
if (!gateway) throw new Error("CONDUCTOR_GATEWAY_URL is not set (a real gateway serving the page at /app/)");

const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  // Offline on purpose: only the loopback address resolves.
  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
];

let browser;
before(async () => {
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: FLAGS });
});
after(async () => {
  await browser?.close();
});

async function openPage(query) {
  const page = await browser.newPage({ viewport: { width: 1100, height: 720 } });
  const calls = [];
  const errors = [];
  page.on("request", (request) => calls.push(`${request.method()} ${new URL(request.url()).pathname}`));
  page.on("pageerror", (error) => errors.push(String(error)));
  await page.goto(`${gateway}/app/${query}`);
  return { page, calls, errors };
}

// Demo batches (conductor/demo.py) and what ai_feedback resolves to on each.
const CASES = [
  { transport: "eventsource", batch: "demo-spellchecked", pipeline: "nlp → ai_feedback", done: "spellcheck" },
  { transport: "fetch", batch: "demo-partial", pipeline: "spellcheck → nlp → ai_feedback", done: null },
];

for (const { transport, batch, pipeline, done } of CASES) {
  const completeNlp = transport === "eventsource" && signals;
  test(`requesting ai_feedback on ${batch} shows it resolve through the push (${transport})`, async () => {
    const { page, calls, errors } = await openPage(`?batch=${batch}&transport=${transport}`);
    await page.locator('[data-testid="stream"][data-state="open"]').waitFor({ timeout: 30_000 });
    await page.locator('tr[data-step="spellcheck"] .badge').waitFor();
    await page.evaluate(() => (window.__sameDocument = true));

    await page.selectOption('[data-testid="pipeline"]', "ai_feedback");
    const answer = page.waitForResponse(
      (r) => r.request().method() === "POST" && new URL(r.url()).pathname === `/v1/batches/${batch}/pipelines`,
    );
    const clicked = performance.now();
    await page.click('[data-testid="request"]');
    const accepted = await (await answer).json();
    assert.equal(accepted.status, "accepted");

    const row = page.locator(`li[data-correlation-id="${accepted.correlation_id}"][data-status="resolved"]`);
    await row.waitFor({ timeout: 30_000 });
    console.log(`latency ${transport}: click -> resolved on the page in ${Math.round(performance.now() - clicked)} ms`);
    assert.equal((await row.locator('[data-testid="final-pipeline"]').textContent())?.trim(), pipeline);
    if (done) assert.match(await row.textContent(), new RegExp(`already done: ${done}`));

    if (completeNlp) {
      // The platform finishes nlp on every essay: the step's row follows, pushed as a progress event.
      assert.equal(await page.locator('tr[data-step="nlp"] .badge').textContent(), "not_started");
      const signalled = performance.now();
      writeFileSync(join(signals, "resolved"), accepted.correlation_id);
      await page.locator('tr[data-step="nlp"] .badge', { hasText: /^completed$/ }).waitFor({ timeout: 60_000 });
      const ms = Math.round(performance.now() - signalled);
      console.log(`latency ${transport}: nlp completion published -> row completed in ${ms} ms (includes the publish)`);
      assert.equal(await page.locator('tr[data-step="nlp"] td').nth(2).textContent(), "3");
      await page.locator('[data-testid="events"] li[data-type="progress"]').first().waitFor();
    }

    // Same document (no reload), and everything came through the stream: nothing fetched the outcome or the status.
    assert.equal(await page.evaluate(() => window.__sameDocument), true);
    const polled = calls.filter((c) => c.includes(accepted.correlation_id) || c.endsWith("/status"));
    assert.deepEqual(polled, []);
    assert.ok(calls.some((c) => c.startsWith("GET ") && c.endsWith(`/v1/batches/${batch}/events`)), calls.join("\n"));
    assert.deepEqual(errors, []);
    if (screenshot && completeNlp) await page.screenshot({ path: screenshot, fullPage: true });
    await page.close();
  });
}

test("an unknown batch shows the gateway's problem worded for a person", async () => {
  const { page, errors } = await openPage("");
  await page.fill('[data-testid="batch-input"]', "no-such-batch");
  await page.click('[data-testid="watch"]');
  const problem = page.locator('[data-testid="problem"][data-code="BATCH_NOT_FOUND"]');
  await problem.waitFor({ timeout: 30_000 });
  assert.match(await problem.textContent(), /No registered batch with this id/);
  assert.match(await problem.textContent(), /HTTP 404/);
  assert.deepEqual(errors, []);
  await page.close();
});
