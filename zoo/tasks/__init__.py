"""Classification tasks. The built-in ones are :data:`BUILTIN_TASKS`."""

from zoo.tasks.digits import DIGITS_TASKS
from zoo.tasks.images import IMAGE_TASKS
from zoo.tasks.task import Recipe, Task, TaskData

BUILTIN_TASKS = DIGITS_TASKS + IMAGE_TASKS

__all__ = ["BUILTIN_TASKS", "Recipe", "Task", "TaskData"]
