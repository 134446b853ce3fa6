-- wrk script: flash-sale claims by distinct customers on the sale DROP (one unit each).
-- Token from the AISLE_TOKEN environment variable; AISLE_SALE names another sale. No
-- `response` callback: it would make wrk run Lua per answer and measure itself. Non-2xx
-- answers (409 sold out) are counted by wrk.
local token = os.getenv("AISLE_TOKEN")
local sale = os.getenv("AISLE_SALE") or "DROP"
local counter = 0
-- Each wrk thread has its own Lua state; a table's address tells them apart.
local prefix = "w"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token

init = function(args)
  prefix = "w" .. string.gsub(tostring({}), "[^%x]", "")
end

request = function()
  counter = counter + 1
  local body = string.format('{"customer":"%s-%d"}', prefix, counter)
  return wrk.format(nil, "/v1/flash-sales/" .. sale .. "/claims", nil, body)
end

done = function(summary, latency, requests)
  io.write(string.format("p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
  io.write(string.format("non-2xx/3xx: %d\n", summary.errors.status))
end
