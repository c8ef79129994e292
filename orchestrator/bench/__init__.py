"""`finnsplit bench`: measuring a running pipeline, where it runs, and the report.
"""
