"""Benchmarks: ``python -m bench NAME``. Each module ``bench/NAME.py`` has a ``main()`` whose last printed line is
one JSON object of its figures. Results and the machine they ran on are recorded in ``docs/benchmarks.md``."""
