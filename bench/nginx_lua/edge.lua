-- The gateway's request path as nginx + LuaJIT (a measured prototype, not the gateway: see
-- bench/gateway_nginx_lua.py). Per request: the bearer token from a shared-dict cache of
-- verified tokens (a miss asks the Python verifier once), expiry, revocation and scope checked,
-- a token bucket taken, caller headers set, the request proxied by nginx's own C proxy (a
-- subrequest), then one audit record handed to the group commit (audit.lua), and only then the
-- answer written: the same order as the Python edge (gateway/edge/server.py).
local cjson = require "cjson.safe"
local audit = require "audit"
local tokens = ngx.shared.tokens
local limits = ngx.shared.limits
local revoked = ngx.shared.revoked
local find, sub = string.find, string.sub
local MODE = os.getenv("XSN_LUA_MODE") or "full"

local ROUTE_SCOPE = "bench:read"
local RATE, BURST = 10000000, 10000000  -- as bench.gateway: high enough never to refuse

local _M = {}

local function problem(status, code)
  return status, cjson.encode({type = "about:blank", title = code, status = status, code = code})
end

-- A token bucket per key; get-then-set is not atomic across workers, which a prototype may
-- accept (the Python edge's Redis limiter is one Lua script).
local function take(key, now)
  local v = limits:get(key)
  local level = BURST
  if v then
    local sep = find(v, "|", 1, true)
    local ts = tonumber(sub(v, sep + 1))
    level = math.min(BURST, tonumber(sub(v, 1, sep - 1)) + (now - ts) * RATE)
  end
  if level < 1 then return false end
  limits:set(key, (level - 1) .. "|" .. now, 60)
  return true
end

local function caller(now)
  local auth = ngx.var.http_authorization
  if not auth or sub(auth, 1, 7) ~= "Bearer " then return nil, 401, "invalid_token" end
  local token = sub(auth, 8)
  local v = tokens:get(token)
  if not v then
    local res = ngx.location.capture("/_verify", {method = ngx.HTTP_POST, body = token})
    if res.status ~= 200 then return nil, 401, "invalid_token" end
    v = res.body
    local c = cjson.decode(v)
    tokens:set(token, v, math.max(1, c.exp - now))
  end
  local claims = cjson.decode(v)
  if not claims or claims.exp <= now or (claims.jti and revoked:get(claims.jti)) then
    return nil, 401, "invalid_token"
  end
  if not find(" " .. (claims.scope or "") .. " ", " " .. ROUTE_SCOPE .. " ", 1, true) then
    return nil, 403, "insufficient_scope"
  end
  return claims
end

function _M.handle()
  local now = ngx.now()
  local claims, status, code = caller(now)
  local body, res, outcome = nil, nil, "ok"
  local client, subject = "-", "-"
  if claims then
    client, subject = claims.client_id or "-", claims.sub or "-"
    if not take("default|/bench/item|" .. client, now) then status, code = 429, "rate_limited" end
  end
  if claims and not status then
    ngx.req.set_header("X-XSN-Client-Id", client)
    ngx.req.set_header("X-XSN-Subject", subject)
    ngx.req.set_header("X-Forwarded-For", ngx.var.remote_addr)
    res = ngx.location.capture("/_up" .. ngx.var.request_uri)
    status = res.status
  else
    status, body = problem(status, code)
    outcome = "denied"
  end
  if MODE ~= "noaudit" then
    local record = cjson.encode({time = ngx.time(), request_id = ngx.var.request_id, client_id = client,
                                 subject = subject, source = ngx.var.remote_addr, method = ngx.var.request_method,
                                 path = ngx.var.uri, status = status, latency_ms = (ngx.now() - now) * 1000,
                                 outcome = outcome, reason = code, upstream = "bench"}) .. "\n"
    if not audit.append(record) then
      status, body = problem(503, "audit_unavailable")
      res = nil
    end
  end
  ngx.status = status
  if res then
    for k, hv in pairs(res.header) do ngx.header[k] = hv end
    body = res.body
  else
    ngx.header["Content-Type"] = "application/problem+json"
  end
  ngx.header["X-Request-Id"] = ngx.var.request_id
  ngx.print(body)
end

return _M
