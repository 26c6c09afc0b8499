-- wrk script: POST a pipeline request to one of BENCH_BATCHES batches in turn; print the figures as JSON at the end.
local batches = tonumber(os.getenv("BENCH_BATCHES") or "100")
local prefix = os.getenv("BENCH_PREFIX") or "gw-"
local token = os.getenv("BENCH_TOKEN")
local body = '{"requested_pipeline":"nlp"}'
local counter = 0

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

request = function()
  counter = counter + 1
  return wrk.format(nil, "/v1/batches/" .. prefix .. (counter % batches) .. "/pipelines", nil, body)
end

done = function(summary, latency, requests)
  local parts = {}
  for _, p in ipairs({1, 5, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100}) do
    parts[#parts + 1] = string.format("[%g, %.3f]", p, latency:percentile(p) / 1000.0)
  end
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_s": %.3f, "non_2xx": %d, "socket_errors": %d, "timeouts": %d, ' ..
    '"mean_ms": %.3f, "percentiles_ms": [%s]}\n',
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write, summary.errors.timeout,
    latency.mean / 1000.0, table.concat(parts, ", ")))
end
