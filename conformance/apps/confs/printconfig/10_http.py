http_protocols = "h1"
keepalive = 0
worker_connections = 2000
control_socket_mode = 0o660
control_socket_disable = True
max_requests = 0
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(L)s %(p)s'
