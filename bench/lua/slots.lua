-- Availability: 30 days of a service at one centre, as a signed-in citizen (their horizon applies).
local tokens
function init(args)
  tokens = read_lines(os.getenv("BENCH_TOKENS"))
  math.randomseed(104729 * (tid + 1))
end
function request()
  return wrk.format("GET", os.getenv("BENCH_PATH"),
    {["Authorization"] = "Bearer " .. tokens[math.random(#tokens)]})
end
function response(status, headers, body)
  bump("status_" .. status)
end
