"""The governor bench's control: the same operation with no declared limit (``bench.governor``)."""

from dataclasses import replace

from bench.governor import definition as governed

definition = replace(governed, id="ungoverned_bench", name="Ungoverned bench", rate_limit=None)
