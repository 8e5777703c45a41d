-- Release crowd: every citizen of BENCH_TOKENS enters the draw at BENCH_PATH once, as fast as the
-- connections allow; when all of a thread's citizens are answered it writes <BENCH_OUT>.done<tid>, and the
-- harness stops wrk once every thread has (an answer that never comes leaves wrk to its -d bound).
-- Until then a thread with nothing left to send asks /healthz ("idle"). Entry ids go to "samples".
local tokens, mine, cursor, answered, parts, idle, finished, last_answer

function init(args)
  tokens = read_lines(os.getenv("BENCH_TOKENS"))
  local nthreads = tonumber(os.getenv("BENCH_THREADS"))
  mine, cursor, answered, idle, last_answer = {}, 0, 0, 0, os.time()
  for i = 1, #tokens do
    if (i - 1) % nthreads == tid then mine[#mine + 1] = i end
  end
  parts = {"any", "morning", "afternoon"}
end

-- Every one of this thread's citizens is answered (or given up on): tell the harness, which stops wrk
-- once every thread is finished.
function mark_finished(how)
  finished = true
  if how ~= "done" then bump("entry_unanswered_" .. (#mine - answered)) end
  local marker = io.open(os.getenv("BENCH_OUT") .. ".done" .. tid, "w")
  marker:write(how .. "\n")
  marker:close()
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
  -- Everything sent: the last answers are still in flight. One that has not come 12 s after the last
  -- answer (wrk's --timeout is 10 s) never will: the thread is done all the same.
  if not finished and os.time() - last_answer > 12 then mark_finished("gave_up") end
  bump("idle_sent")
  return wrk.format("GET", "/healthz", {["X-Request-ID"] = "i:0"})
end

-- A thread with nothing left to send waits between its /healthz asks, so that they cost the workers little
-- beside the entries still being answered.
function delay()
  if cursor < #mine then return 0 end
  return 500
end

function response(status, headers, body)
  local rid = header(headers, "X-Request-ID") or ""
  if rid:sub(1, 2) == "e:" then
    answered = answered + 1
    last_answer = os.time()
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
  if answered >= #mine and not finished then mark_finished("done") end
end
