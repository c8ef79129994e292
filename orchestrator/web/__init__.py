"""The daemon's web side: a small HTTPS server, the live dashboard, the status page.
"""
