"""Todoist (seed 003's phase-0 connector): ``oauth`` (generated from data), ``operations``, ``definition``."""

from definitions.todoist.definition import definition

__all__ = ["definition"]
