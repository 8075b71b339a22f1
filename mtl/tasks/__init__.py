"""Tasks as plug-ins: one module per task, registered with ``@register_task`` (see ``mtl.tasks.base``)."""

from mtl.models.options import TaskOutput
from mtl.tasks.base import TASKS, Task, build_tasks, derived_tasks, final, register_task

__all__ = ["TASKS", "Task", "TaskOutput", "build_tasks", "derived_tasks", "final", "register_task"]
