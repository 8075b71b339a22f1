"""Tasks as plug-ins: one module per task, registered with ``@register_task`` (see ``mtl.tasks.base``)."""

from mtl.tasks.base import TASKS, Task, TaskOutput, build_tasks, final, register_task

__all__ = ["TASKS", "Task", "TaskOutput", "build_tasks", "final", "register_task"]
