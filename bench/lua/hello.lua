-- Reference: GET /healthz on the same gunicorn, counting statuses like every other script.
function response(status, headers, body)
  bump("status_" .. status)
end
