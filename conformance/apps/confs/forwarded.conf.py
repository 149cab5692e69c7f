# Behind a trusted reverse proxy (e.g. nginx on another host).
forwarded_allow_ips = "*"
forwarder_headers = "SCRIPT_NAME,PATH_INFO,REMOTE_USER"
secure_scheme_headers = {"X-FORWARDED-PROTO": "https", "X-FORWARDED-SSL": "on", "X-SCHEME": "https"}
proxy_allow_ips = "127.0.0.1"
