statsd_host = "localhost:8125"
statsd_prefix = "shop.web"
dogstatsd_tags = "env:prod,service:shop"
enable_backlog_metric = True
syslog = False
syslog_prefix = "shop"
