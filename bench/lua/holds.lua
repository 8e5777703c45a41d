-- Booking surge: each connection holds a seat of a random slot from BENCH_SLOTS as one of this thread's
-- citizens (BENCH_TOKENS, one access token a line), then confirms it (BENCH_CONFIRM=1). A citizen with a
-- seat stops booking; one whose hold was refused (slot_full) tries again later. The X-Request-ID the app
-- echoes tells each answer's citizen. References go to "samples" so run.py checks them in the database.
-- With BENCH_APPLICANTS (one JSON list of national ids a line, in the order of BENCH_TOKENS), each hold is
-- a family's: `"applicants": <that line>`, one seat per applicant.
local tokens, slots, mine, cursor, confirms, busy, booked, applicants
local confirm = os.getenv("BENCH_CONFIRM") == "1"

function init(args)
  tokens = read_lines(os.getenv("BENCH_TOKENS"))
  slots = read_lines(os.getenv("BENCH_SLOTS"))
  local family = os.getenv("BENCH_APPLICANTS")
  applicants = (family and #family > 0) and read_lines(family) or nil
  local nthreads = tonumber(os.getenv("BENCH_THREADS"))
  mine, confirms, busy, booked, cursor = {}, {}, {}, {}, 0
  for i = 1, #tokens do
    if (i - 1) % nthreads == tid then mine[#mine + 1] = i end
  end
  math.randomseed(7919 * (tid + 1))
end

function request()
  if #confirms > 0 then
    local c = table.remove(confirms, 1)
    bump("confirm_sent")
    return wrk.format("POST", "/api/v1/bookings/" .. c[2] .. "/confirm",
      {["Authorization"] = "Bearer " .. tokens[c[1]], ["X-Request-ID"] = "c:" .. c[1] .. ":" .. c[2]}, "")
  end
  for _ = 1, #mine do
    cursor = cursor % #mine + 1
    local idx = mine[cursor]
    if not busy[idx] and not booked[idx] then
      busy[idx] = true
      bump("hold_sent")
      return wrk.format("POST", "/api/v1/bookings",
        {["Authorization"] = "Bearer " .. tokens[idx], ["Content-Type"] = "application/json",
         ["X-Request-ID"] = "h:" .. idx},
        '{"slot_id": ' .. slots[math.random(#slots)] ..
          (applicants and (', "applicants": ' .. applicants[idx]) or '') .. '}')
    end
  end
  bump("idle_sent")  -- every citizen of this thread has a seat or a request in flight
  return wrk.format("GET", "/healthz", {["X-Request-ID"] = "i:0"})
end

function response(status, headers, body)
  local rid = header(headers, "X-Request-ID") or ""
  local kind, idx = rid:match("^(%a):(%d+)")
  idx = tonumber(idx)
  if kind == "h" then
    busy[idx] = nil
    if status == 201 then
      bump("hold_201")
      local ref = body:match('"reference"%s*:%s*"([^"]+)"')
      booked[idx] = true
      samples[#samples + 1] = "held:" .. (ref or "?")
      if confirm and ref then confirms[#confirms + 1] = {idx, ref} end
    else
      bump("hold_" .. status .. "_" .. error_code(body))
    end
  elseif kind == "c" then
    local ref = rid:match("^c:%d+:(.+)$")
    if status == 200 then
      bump("confirm_200")
      samples[#samples + 1] = "confirmed:" .. ref
    else
      bump("confirm_" .. status .. "_" .. error_code(body))
    end
  elseif kind == "i" then
    bump("idle_" .. status)
  else
    bump("unknown_" .. status)
  end
end
