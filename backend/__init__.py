"""DDPM Studio backend: the REST API plus the persistence layer the worker shares.

Import map (the worker may import everything here except ``backend.app`` / ``backend.routes``,
which pull in FastAPI):

- ``backend.settings``  environment settings (pydantic-settings), ``get_settings()``
- ``backend.db``        engine / session factory, SQLite WAL, migrations at start
- ``backend.models``    SQLAlchemy 2 tables
- ``backend.storage``   on-disk layout under DATA_DIR and atomic writes
- ``backend.jobs``      the job state machine (transitions, 409-able errors)
- ``backend.leases``    claim / heartbeat / stale-job recovery for workers
- ``backend.reporting`` progress, metrics, samples, status: rows + events in one call
- ``backend.events``    the events table + Redis wake-ups
- ``backend.celery_client``  enqueue ``ddpm.train`` / ``ddpm.sample`` by name
"""
