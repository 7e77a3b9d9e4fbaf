"""Task datasets (clean/corrupted prompts with answers) and circuit analyses.

Planned here: IOI, greater-than, docstring, induction and Colored Objects generators
(circuit-discovery issue) and the toy autoregressive tasks of the expressive-attention issue.
"""
