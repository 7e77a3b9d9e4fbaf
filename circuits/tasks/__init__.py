"""Prompt generators: each returns a ``TaskBatch`` of clean and corrupted prompts (same token
lengths pairwise) with the answer and a wrong-answer token per prompt."""

from circuits.tasks import generators  # noqa: F401  (registers ioi, colored_objects, ...)
from circuits.tasks.base import TASKS, TaskBatch, check_tasks, make_task


def task_prompts(model, name: str, n: int) -> list[str]:
    """The clean prompts of task ``name`` (``n`` pairs): interp's ``task`` prompt source (entry
    point ``interp.prompt_sources``), used by sweeps."""
    return make_task(model, name, n=n).prompts


__all__ = ["TASKS", "TaskBatch", "check_tasks", "make_task", "task_prompts"]
