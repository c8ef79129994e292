"""The `finnsplit` command line, on top of the stack: it composes the splitter and the orchestrator.

cli/main.py is the entry point; each other module holds one family of commands (docs/architecture.md).
"""
