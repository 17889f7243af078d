"""Dramatiq: the broker, the two actors and the delivery sender (the only package that imports dramatiq).
"""
