-- Release crowd: every citizen of BENCH_TOKENS enters the draw at BENCH_PATH once, as fast as the
-- connections allow; a thread stops when all its citizens are answered (or, if one answer never comes,
-- after 1,000 idle answers once everything was sent). Entry ids go to "samples".
local tokens, mine, cursor, answered, parts, idle

function init(args)
  tokens = read_lines(os.getenv("BENCH_TOKENS"))
  local nthreads = tonumber(os.getenv("BENCH_THREADS"))
  mine, cursor, answered, idle = {}, 0, 0, 0
  for i = 1, #tokens do
    if (i - 1) % nthreads == tid then mine[#mine + 1] = i end
  end
  parts = {"any", "morning", "afternoon"}
end

function request()
  if cursor < #mine then
    cursor = cursor + 1
    local idx = mine[cursor]
    bump("entry_sent")
    return wrk.format("POST", os.getenv("BENCH_PATH"),
      {["Authorization"] = "Bearer " .. tokens[idx], ["Content-Type"] = "application/json",
       ["X-Request-ID"] = "e:" .. idx},
      '{"part_of_day": "' .. parts[idx % 3 + 1] .. '"}')
  end
  bump("idle_sent")  -- the last answers are still in flight
  return wrk.format("GET", "/healthz", {["X-Request-ID"] = "i:0"})
end

function response(status, headers, body)
  local rid = header(headers, "X-Request-ID") or ""
  if rid:sub(1, 2) == "e:" then
    answered = answered + 1
    if status == 201 then
      bump("entry_201")
      local id = body:match('"entry_id"%s*:%s*(%d+)')
      samples[#samples + 1] = "entry:" .. (id or "?")
    else
      bump("entry_" .. status .. "_" .. error_code(body))
    end
  else
    bump("idle_" .. status)
    idle = idle + 1
  end
  if answered >= #mine or idle >= 1000 then wrk.thread:stop() end
end
