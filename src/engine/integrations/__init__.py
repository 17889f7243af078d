"""An integration's life: its states and audit trail (lifecycle), and the setup reconciliation that connects it.
"""
