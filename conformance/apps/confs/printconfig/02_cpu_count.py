import multiprocessing

bind = ["127.0.0.1:8000", "127.0.0.1:8001", "unix:/tmp/app.sock"]
workers = multiprocessing.cpu_count() * 2 + 1
worker_class = "gthread"
threads = 4
worker_connections = 500
max_requests = 1000
max_requests_jitter = 50
backlog = 512
