"""Prompt generators: each returns a ``TaskBatch`` of clean and corrupted prompts (same token
lengths pairwise) with the answer and a wrong-answer token per prompt."""

from circuits.tasks.base import TASKS, TaskBatch, make_task

__all__ = ["TASKS", "TaskBatch", "make_task"]
