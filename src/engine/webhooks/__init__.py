"""Inbound webhooks: verifiers, endpoint rows, targets (an endpoint resolved with its secrets), and deliveries
(recording, processing, the sweep).
"""
