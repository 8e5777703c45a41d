-- Shared by every bench script (bench/run.py prepends it): per-thread counters, a JSON summary at the end.
-- Environment: BENCH_OUT (summary path), BENCH_THREADS (wrk -t). Loopback only; wrk bounds the time (-d).
local threads = {}
local next_tid = 0

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
  table.insert(threads, thread)
end

stats = {}
samples = {}

function bump(key)
  stats[key] = (stats[key] or 0) + 1
end

function read_lines(path)
  local t = {}
  for line in io.lines(path) do
    if #line > 0 then t[#t + 1] = line end
  end
  return t
end

function header(headers, name)
  local v = headers[name]
  if v then return v end
  local lower = string.lower(name)
  for k, value in pairs(headers) do
    if string.lower(k) == lower then return value end
  end
  return nil
end

function error_code(body)
  return (body and body:match('"code"%s*:%s*"([^"]+)"')) or "none"
end

local function json_string(s)
  return '"' .. tostring(s):gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

function done(summary, latency, requests)
  local agg = {}
  local collected = {}
  for _, t in ipairs(threads) do
    local s = t:get("stats") or {}
    for k, v in pairs(s) do agg[k] = (agg[k] or 0) + v end
    local list = t:get("samples") or {}
    for _, v in ipairs(list) do collected[#collected + 1] = v end
  end
  local parts = {}
  for k, v in pairs(agg) do parts[#parts + 1] = json_string(k) .. ": " .. v end
  local items = {}
  for _, v in ipairs(collected) do items[#items + 1] = json_string(v) end
  local e = summary.errors
  local out = io.open(os.getenv("BENCH_OUT"), "w")
  out:write("{")
  out:write('"duration_us": ' .. summary.duration .. ', "requests": ' .. summary.requests)
  out:write(', "bytes": ' .. summary.bytes)
  out:write(', "errors": {"connect": ' .. e.connect .. ', "read": ' .. e.read .. ', "write": ' .. e.write)
  out:write(', "status": ' .. e.status .. ', "timeout": ' .. e.timeout .. '}')
  out:write(', "latency_us": {"mean": ' .. latency.mean .. ', "max": ' .. latency.max)
  for _, p in ipairs({50, 90, 99, 99.9}) do
    out:write(', "p' .. p .. '": ' .. latency:percentile(p))
  end
  out:write('}, "stats": {' .. table.concat(parts, ", ") .. '}')
  out:write(', "samples": [' .. table.concat(items, ", ") .. ']}')
  out:close()
end
