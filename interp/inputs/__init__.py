"""Inputs the detectors, circuits, sweeps and benchmarks read: text windows and token samples
(``text``), needle-in-a-haystack tests (``needles``), prompt files and prompt sources
(``prompts``)."""
