"""finnsplit board agent: one board's MQTT control plane, supervising its finnsplit-server.

Contract: docs/control-plane.md. Public surface: `load_config`/`AgentConfig` (config.py),
`BoardAgent` (agent.py), `ServerSupervisor`/`server_command` (server.py), `FpgaManager` (fpga.py),
`parse_run`/`prepare_run` (run.py). Entry point: `python -m board_agent --config agent.yaml`.
Imports only the standard library, PyYAML, aiomqtt and finnsplit's standard-library-only modules
(core.errors, core.manifest), so it runs on a board without numpy or onnx.
"""
