"""The Celery app workers run: `celery -A fmops_pipelines.celery_app worker -Q $FMOPS_CELERY_QUEUE --concurrency 1`.

Built from `execution.celery_app_args`, the settings the executor submits steps with; the one task it
serves is dagster-celery's step executor, which loads the step's job through `launcher.task_job`.
"""

from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from fmops_pipelines.execution import celery_app_args
from fmops_pipelines.launcher import quiet_libraries

quiet_libraries()
app = make_app(celery_app_args())
execute_plan = create_task(app)
