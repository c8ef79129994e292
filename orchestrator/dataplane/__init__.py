"""The data plane's laptop end: the wire protocol, authenticated links, the client with its one result
port, the Python API and the ingress.
"""
