"""Attention statistics. ``dense`` holds the plain reference computed from full patterns."""

from interp.stats.dense import head_summary, per_query_stats, sink_scores

__all__ = ["head_summary", "per_query_stats", "sink_scores"]
