-- Counters: one wrk thread and one connection per counter (wrk -tN -cN). Each calls next, completes the
-- ticket it got, calls next again. Every "counter:ticket:service" a call-next answered goes to "samples"
-- (a ticket of several services is called once per service); run.py counts
-- duplicates among them and compares them with the database (lost = called there, never answered here).
local counter_id, token, current
function init(args)
  local counters = read_lines(os.getenv("BENCH_COUNTERS"))  -- "counter_id token" a line
  local line = counters[tid + 1]
  counter_id, token = line:match("^(%d+)%s+(%S+)$")
  current = nil
end
function request()
  if current then
    bump("complete_sent")
    return wrk.format("POST", "/api/v1/staff/tickets/" .. current .. "/complete",
      {["Authorization"] = "Bearer " .. token, ["X-Request-ID"] = "x:" .. current}, "")
  end
  bump("call_sent")
  return wrk.format("POST", "/api/v1/staff/counters/" .. counter_id .. "/call-next",
    {["Authorization"] = "Bearer " .. token, ["X-Request-ID"] = "n:" .. counter_id}, "")
end
function response(status, headers, body)
  local rid = header(headers, "X-Request-ID") or ""
  local kind = rid:sub(1, 1)
  if kind == "n" then
    if status == 200 then
      local id = body:match('"ticket_id"%s*:%s*(%d+)')
      local service = body:match('"current_service"%s*:%s*"([^"]+)"') or "?"
      bump("call_200")
      samples[#samples + 1] = counter_id .. ":" .. (id or "?") .. ":" .. service
      current = id
    elseif status == 204 then
      bump("call_204")
    else
      bump("call_" .. status .. "_" .. error_code(body))
      current = body:match('"ticket_id"%s*:%s*(%d+)')  -- counter_busy names the ticket to finish
    end
  elseif kind == "x" then
    if status == 200 then bump("complete_200") else bump("complete_" .. status .. "_" .. error_code(body)) end
    current = nil
  else
    bump("unknown_" .. status)
  end
end
