"""Asana: a Tether definition (made by ``tether definitions new``; see ``README.md`` beside this file)."""

from asana.definition import definition

__all__ = ["definition"]
