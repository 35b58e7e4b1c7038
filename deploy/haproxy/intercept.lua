-- Intercept's decision service for HAProxy: an `http-request` action and an HTTP service.
--
-- Needs HAProxy 2.5 or later built with Lua (`haproxy -vv` shows "Built with Lua"; Debian's
-- and Ubuntu's haproxy packages are), for `core.httpclient()`. Loaded by haproxy.cfg with
-- `lua-load`; see deploy/haproxy/haproxy.cfg and deploy/README.md.
--
--   http-request lua.intercept_decide
--       Describes the client's request to Intercept's `/_intercept/authz` (the same contract as
--       Traefik's ForwardAuth: X-Forwarded-Method, -Uri, -Host, -Proto, the client's
--       Accept-Language and Content-Type, and a buffered POST body). A 2xx answer lets the
--       request go on untouched. Any other answer (403 with the deterrence page, the warn
--       interstitial or an empty suggestion list; an error page) is kept in transaction
--       variables for the service below.
--   http-request use-service lua.intercept_answer if { var(txn.intercept_status) -m found }
--       Sends that answer to the client as Intercept wrote it: status, headers, body. (A service
--       streams the body, so a page larger than HAProxy's buffer is no problem.)
--
-- Settings come from the environment, set with `setenv` in haproxy.cfg's global section:
--   INTERCEPT_ADDR        host:port of `intercept serve --mode authz` (required)
--   INTERCEPT_TIMEOUT_MS  how long one attempt waits for a decision (default 1000; HAProxy
--                         2.6's httpclient tries up to four times, so a hung Intercept costs a
--                         search about four times this before the 503)
--   INTERCEPT_FAIL_OPEN   "1": let searches through while Intercept cannot be reached; by default
--                         they are answered 503 (fail closed)
--
-- Nothing is logged: no query, address or header leaves this file except towards Intercept.

local address = os.getenv("INTERCEPT_ADDR")
if address == nil or address == "" then
    error("intercept.lua: set INTERCEPT_ADDR (setenv INTERCEPT_ADDR host:port in haproxy.cfg)")
end
local AUTHZ_URL = "http://" .. address .. "/_intercept/authz"
local TIMEOUT_MS = tonumber(os.getenv("INTERCEPT_TIMEOUT_MS") or "") or 1000
local FAIL_OPEN = os.getenv("INTERCEPT_FAIL_OPEN") == "1"

-- Headers of Intercept's answer that describe the connection, not the page: HAProxy writes its own.
local HOP_BY_HOP = {
    ["connection"] = true,
    ["keep-alive"] = true,
    ["transfer-encoding"] = true,
    ["content-length"] = true,
    ["te"] = true,
    ["trailer"] = true,
    ["upgrade"] = true,
    ["proxy-connection"] = true,
    ["date"] = true,
}

local function copy_header(txn, headers, name)
    local value = txn.sf:req_fhdr(name)
    if value ~= nil and value ~= "" then
        headers[name] = { value }
    end
end

-- Keep an answer for `intercept_answer`: status, headers as "name\nvalue\n" pairs, body.
local function keep_answer(txn, status, headers, body)
    local lines = {}
    for name, values in pairs(headers or {}) do
        local lower = string.lower(name)
        if not HOP_BY_HOP[lower] then
            -- HAProxy numbers a header's values from 0; a table written here, from 1
            local first = values[0] ~= nil and 0 or 1
            local i = first
            while values[i] ~= nil do
                lines[#lines + 1] = lower .. "\n" .. values[i] .. "\n"
                i = i + 1
            end
        end
    end
    txn:set_var("txn.intercept_headers", table.concat(lines))
    txn:set_var("txn.intercept_body", body or "")
    txn:set_var("txn.intercept_status", status)
end

local function unavailable(txn)
    if FAIL_OPEN then
        return
    end
    keep_answer(txn, 503, {
        ["content-type"] = { "text/plain; charset=utf-8" },
        ["cache-control"] = { "no-store" },
        ["retry-after"] = { "10" },
    }, "Search is unavailable for a moment. Please try again.\n")
end

local function decide(txn)
    local method = txn.sf:method()
    local headers = {
        ["x-forwarded-method"] = { method },
        ["x-forwarded-uri"] = { txn.sf:pathq() },
        ["x-forwarded-proto"] = { txn.sf:ssl_fc() == "1" and "https" or "http" },
    }
    local host = txn.sf:req_fhdr("host")
    if host ~= nil and host ~= "" then
        headers["x-forwarded-host"] = { host }
    end
    copy_header(txn, headers, "accept-language")
    local body = nil
    if (txn.f:req_body_size() or 0) > 0 then  -- any method: a PUT form is read like a POST one
        -- haproxy.cfg buffered it (`wait-for-body`); a body larger than the buffer is refused
        -- rather than decided on its first part
        if (txn.f:req_body_len() or 0) < (txn.f:req_body_size() or 0) then
            return keep_answer(txn, 413, {
                ["content-type"] = { "text/plain; charset=utf-8" },
                ["cache-control"] = { "no-store" },
            }, "The search request is too large.\n")
        end
        copy_header(txn, headers, "content-type")
        copy_header(txn, headers, "content-encoding")
        body = txn.f:req_body()
    end
    local ok, res = pcall(function()
        return core.httpclient():get({
            url = AUTHZ_URL,
            headers = headers,
            body = body,
            timeout = TIMEOUT_MS,
        })
    end)
    if not ok or res == nil or res.status == nil or res.status == 0 then
        return unavailable(txn)
    end
    if res.status >= 200 and res.status < 300 then
        return -- allowed: the request goes on to the search front-end as it came
    end
    if res.status == 502 or res.status == 503 or res.status == 504 then
        return unavailable(txn) -- Intercept not there (or draining): INTERCEPT_FAIL_OPEN applies
    end
    -- anything else, a 500 included (a request Intercept failed on), is its answer: a request
    -- that makes the decision fail must not pass because of it
    keep_answer(txn, res.status, res.headers, res.body)
end

local function answer(applet)
    local status = tonumber(applet:get_var("txn.intercept_status")) or 503
    local headers = applet:get_var("txn.intercept_headers") or ""
    local body = applet:get_var("txn.intercept_body") or ""
    applet:set_status(status)
    for name, value in string.gmatch(headers, "([^\n]+)\n([^\n]*)\n") do
        applet:add_header(name, value)
    end
    applet:add_header("content-length", tostring(#body))
    applet:start_response()
    if applet.method ~= "HEAD" then
        applet:send(body)
    end
end

core.register_action("intercept_decide", { "http-req" }, decide, 0)
core.register_service("intercept_answer", "http", answer)
