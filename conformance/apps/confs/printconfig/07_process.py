import os

proc_name = "shop-web"
umask = 0o007
pythonpath = "/srv/app/src,/srv/app/lib"
tmp_upload_dir = None
worker_tmp_dir = "/dev/shm"
pidfile = "/tmp/shop-web.pid"
daemon = False
sendfile = False
reuse_port = True
chdir = os.path.dirname(os.path.abspath(__file__))
reload = False
