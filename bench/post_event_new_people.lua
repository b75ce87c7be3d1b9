-- wrk script: POST the same small JSON webhook body as post_event.lua, but with an email
-- nobody has sent before, so that with a rule creating profiles every event makes one.
local counter = 0
local prefix = ""

function setup(thread)
  thread:set("prefix", tostring(math.random(1, 1000000000)))
end

function request()
  counter = counter + 1
  local body = '{"url": "https://example.com/pricing", "user": "John", "email": "p'
    .. prefix .. "-" .. counter .. '@a.com", "plan": {"name": "pro", "seats": 5}}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
