-- wrk script: POST one photo as multipart/form-data (field "image") on every request, and print
-- the run's figures as one JSON line at the end (read by benchmarks/bench_serve.py).
--
--   wrk -t1 -c8 -d15s -s benchmarks/wrk_multipart.lua http://127.0.0.1:8000/suggest -- photo.jpg

local boundary = "emojinet-wrk-boundary-7d1f0c"

function init(args)
  local f = assert(io.open(args[1], "rb"))
  local photo = f:read("*all")
  f:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. boundary
  wrk.body = "--" .. boundary .. "\r\n"
    .. 'Content-Disposition: form-data; name="image"; filename="photo.jpg"\r\n'
    .. "Content-Type: image/jpeg\r\n\r\n"
    .. photo .. "\r\n--" .. boundary .. "--\r\n"
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "non_2xx": %d, "connect_errors": %d, '
      .. '"read_errors": %d, "write_errors": %d, "timeouts": %d, '
      .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read, e.write,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
