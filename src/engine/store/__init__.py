"""The database: engine, sessions and migrations, the loop connection, the tables, and statement batching.
"""
