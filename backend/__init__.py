"""DDPM Studio backend: the REST API plus the persistence layer the worker shares.

Persistence and job plumbing (no FastAPI; the worker imports these):

- ``backend.settings``  environment settings (pydantic-settings), ``get_settings()``
- ``backend.db``        ``open_database(settings)`` -> session factory (engine, SQLite WAL +
  busy timeout, Alembic migrations under a cross-process lock), ``make_engine``, ``migrate``
- ``backend.models``    SQLAlchemy 2 tables: datasets, dataset_files, jobs, metrics, samples,
  workers, events (migrations in ``backend/migrations``)
- ``backend.storage``   ``Storage(DATA_DIR)``: datasets/<id>/files, runs/<job id>/{job.log,
  export/model.safetensors, samples/}; ``atomic_writer`` / ``atomic_write_bytes``
- ``backend.jobs``      the job state machine: ``JobStatus``, ``JobKind``, the ``TRANSITIONS``
  table that ``transition`` obeys, ``request_cancel``, ``resume``, ``finish_job``,
  ``JobStateError`` (HTTP 409)
- ``backend.worker_registry``  the workers table: ``live_workers``, ``remove_worker``
- ``backend.leases``    ``claim_job``, ``heartbeat``, ``renew_lease``, ``release_job``,
  ``requeue_stale_jobs``
- ``backend.dispatch``  ``TASK_NAMES``, ``Queue``, ``DeviceChoice`` and ``choose_device``:
  the one device decision behind the API's queue and the worker's child device
- ``backend.run_spec``  ``TrainRunSpec`` / ``SampleRunSpec`` / ``FinetuneRunSpec`` /
  ``StudyRunSpec`` (``RunSpec``): what the engine child runs, built once from the job row by
  ``build_run_spec``; ``SampleParams``, ``FinetuneParams``, ``StudyParams`` (what those jobs store)
- ``backend.reporting`` ``report_progress``, ``add_metrics``, ``add_sample``, ``set_checkpoint``,
  ``discard_after``: rows + SSE events in one transaction
- ``backend.events``    ``publish_event`` (a row in ``events`` + a Redis wake-up after commit)
- ``backend.celery_client``  ``enqueue_job`` (task by name, job id only), ``recover_stale_jobs``
- ``backend.lost_tasks``  ``LostTaskWatch``: re-sends the task of a queued job that idle workers
  able to run it leave alone (its message was lost); the API's reaper runs it

API (FastAPI; ``backend.app:create_app``, ``python -m backend``): ``routes/`` (one module per
resource), ``schemas`` (OpenAPI models; the train config is ``ddpm.config.TrainConfig``),
``deps`` (session, token), ``errors`` (JSON errors, no leaks; 422 items by key path), ``notifier``
(Redis pub/sub fan-out for SSE), ``web`` (SPA + selective gzip), and the upload pipeline
``pathsafe`` -> ``sniff`` -> ``uploads`` -> ``dataset_store``; ``job_create`` (train, sample) and
``finetune_jobs`` (fine-tune, study) check new jobs against the database. Of the engine the
backend imports only torch-free modules: ``ddpm.config`` and the labelled-folder rules
(``ddpm.finetune.labelled`` / ``label_rules``); a test keeps the API process free of torch.
"""
