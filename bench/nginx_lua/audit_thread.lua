-- Runs in nginx's thread pool (one thread: writes in order). Writes a batch at the spool's end
-- into zeros written ahead, as the Python edge's spool does (gateway/audit/spool/segment_writer:
-- then fdatasync has no file size or extent to commit), and syncs it ("nosync": write only).
local ffi = require "ffi"
ffi.cdef[[
int open(const char *path, int flags, ...);
long pwrite(int fd, const void *buf, size_t n, long offset);
int fdatasync(int fd);
int fsync(int fd);
]]
local O_WRONLY, O_CREAT = 1, 64
local AHEAD = 64 * 1024 * 1024
local files = {}
local _M = {}

function _M.write_sync(path, data, mode)
  local f = files[path]
  if not f then
    local fd = ffi.C.open(path, O_WRONLY + O_CREAT, ffi.new("int", 420))
    if fd < 0 then return false, "open errno " .. ffi.errno() end
    local zeros = string.rep("\0", 1024 * 1024)
    for i = 0, AHEAD / #zeros - 1 do ffi.C.pwrite(fd, zeros, #zeros, i * #zeros) end
    ffi.C.fsync(fd)
    f = {fd = fd, offset = 0}
    files[path] = f
  end
  local n = tonumber(ffi.C.pwrite(f.fd, data, #data, f.offset))
  if n ~= #data then return false, "short write " .. n end
  f.offset = f.offset + n
  if mode ~= "nosync" and ffi.C.fdatasync(f.fd) ~= 0 then return false, "fdatasync errno " .. ffi.errno() end
  return true
end

return _M
