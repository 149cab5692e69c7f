bind = 8000
