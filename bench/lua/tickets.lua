-- Kiosk walk-in tickets: POST /centres/{id}/tickets with the kiosk token, services in turn.
local services, n, token, path
function init(args)
  services = read_lines(os.getenv("BENCH_SERVICES"))
  token = os.getenv("BENCH_KIOSK_TOKEN")
  path = "/api/v1/centres/" .. os.getenv("BENCH_CENTRE") .. "/tickets"
  n = tid
end
function request()
  n = n + 1
  return wrk.format("POST", path,
    {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"},
    '{"service": "' .. services[n % #services + 1] .. '"}')
end
function response(status, headers, body)
  if status == 201 then bump("ticket_201") else bump("ticket_" .. status .. "_" .. error_code(body)) end
end
