-- bench/post.lua - wrk script for bench/http: POST /client-tokens with a
-- small JSON body and the bearer key from $CTKN_BENCH_KEY, on every
-- connection back to back. Counts the 201s and everything else per thread;
-- done() prints one line, "post.lua: created=N other=M first_other=...",
-- which bench/http checks (any non-201 fails the bench).
local key = os.getenv("CTKN_BENCH_KEY")
if key == nil or key == "" then
  error("post.lua: set CTKN_BENCH_KEY")
end

wrk.method = "POST"
wrk.body = '{"name":"bench http","description":"created by wrk"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  created = 0
  other = 0
  first_other = ""
end

function response(status, headers, body)
  if status == 201 then
    created = created + 1
  else
    other = other + 1
    if first_other == "" then
      first_other = status .. " " .. string.sub(body or "", 1, 300)
    end
  end
end

function done(summary, latency, requests)
  local c, o, first = 0, 0, ""
  for _, t in ipairs(threads) do
    c = c + t:get("created")
    o = o + t:get("other")
    if first == "" then
      first = t:get("first_other")
    end
  end
  io.write(string.format("post.lua: created=%d other=%d first_other=%s\n",
                         c, o, string.gsub(first, "\n", " ")))
end
