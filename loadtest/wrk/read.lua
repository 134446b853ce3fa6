-- wrk script: reads of one stock cell (SKU-n at WH), the availability path a POS uses.
local token = os.getenv("AISLE_TOKEN")
local counter = 0
wrk.headers["Authorization"] = "Bearer " .. token

request = function()
  counter = counter + 1
  return wrk.format("GET", string.format("/v1/stock/SKU-%d/WH", counter % 100))
end

done = function(summary, latency, requests)
  io.write(string.format("p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
  io.write(string.format("non-2xx/3xx: %d\n", summary.errors.status))
end
