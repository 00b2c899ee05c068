-- Group commit of audit records per nginx worker: the first request to find no sync running
-- leads; it hands the gathered batch to nginx's thread pool (write + fdatasync off the event
-- loop: audit_thread.lua), then wakes that batch's waiters; batches gathered meanwhile go next.
local semaphore = require "ngx.semaphore"
local MODE = os.getenv("XSN_LUA_MODE") or "full"
local _M = {}
local current, syncing, path = nil, false, nil

function _M.init(dir)
  path = dir .. "/spool-" .. ngx.worker.id()
end

function _M.append(record)
  if not current then current = {records = {}, n = 0, sema = semaphore.new(), ok = nil} end
  local mine = current
  mine.n = mine.n + 1
  mine.records[mine.n] = record
  if syncing then
    local ok = mine.sema:wait(5)
    return ok and mine.ok
  end
  syncing = true
  while current do
    local batch = current
    current = nil
    local ok, written, why = ngx.run_worker_thread("audit", "audit_thread", "write_sync", path,
                                                   table.concat(batch.records), MODE)
    batch.ok = ok and written
    if not batch.ok then ngx.log(ngx.ERR, "audit write failed: ", tostring(written), " ", tostring(why)) end
    local waiters = batch == mine and batch.n - 1 or batch.n
    if waiters > 0 then batch.sema:post(waiters) end
  end
  syncing = false
  return mine.ok
end

return _M
