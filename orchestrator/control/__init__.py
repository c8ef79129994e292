"""The control plane: the fleet, its broker and identities, the MQTT link to the agents, the daemon's
reconcile loop and health.
"""
