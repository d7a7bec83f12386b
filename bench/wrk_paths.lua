-- wrk script of bench/api_latency.py: GETs the paths listed in the file $WRK_PATHS in turn (each thread
-- from a random start) with the API's auth headers, and prints one JSON line of figures when done.
local paths = {}
for line in io.lines(os.getenv("WRK_PATHS")) do paths[#paths + 1] = line end
local headers = {
  ["X-Internal-API-Key"] = os.getenv("WRK_API_KEY"),
  ["X-Service-ID"] = "api-gateway-service",
}
local next_index = 0

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  next_index = math.random(#paths)
end

function request()
  next_index = next_index % #paths + 1
  return wrk.format("GET", paths[next_index], headers)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "non_2xx_3xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end
