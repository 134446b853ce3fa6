-- wrk script: single-line reservations spread over SKU-0..SKU-99 at location WH.
-- Token from the AISLE_TOKEN environment variable.
local token = os.getenv("AISLE_TOKEN")
local counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token

request = function()
  counter = counter + 1
  local body = string.format('{"channel":"web","lines":[{"sku":"SKU-%d","qty":1,"location":"WH"}]}', counter % 100)
  return wrk.format(nil, "/v1/reservations", nil, body)
end

-- Count statuses so a run with errors is not mistaken for a fast one.
local statuses = {}
response = function(status)
  statuses[status] = (statuses[status] or 0) + 1
end

done = function(summary, latency, requests)
  io.write(string.format("p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
  io.write(string.format("non-2xx/3xx: %d\n", summary.errors.status))
end
