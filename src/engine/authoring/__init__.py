"""The declaration DSL a provider definition is written in: slots, configs, clients, connections, operations, webhooks,
mappings and the definition itself. Re-exported from ``engine``.
"""
