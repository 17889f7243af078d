"""Which definitions exist: loading them (built-ins, entry points, modules), the registry that validates them at start-
up, and their descriptions for the API.
"""
