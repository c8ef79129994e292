"""Deployment over SSH: bundles onto boards (verified, atomic) and the board agent itself (`finnsplit
board install`).
"""
