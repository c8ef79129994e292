"""Virtual boards and fleets: real server processes, network namespaces, sshd and Mosquitto, used by
commands, benchmarks and tests alike.
"""
