"""Alembic environment: uses the connection handed over by ``backend.db.migrate``.

Run by hand (new revision): ``alembic -c backend/alembic.ini revision --autogenerate -m "..."``
with DATABASE_URL / DATA_DIR set as for the app.
"""
from alembic import context

from backend.models import Base

config = context.config
connection = config.attributes.get("connection")


def _run(conn) -> None:  # noqa: ANN001
    # render_as_batch: SQLite cannot ALTER most things; batch mode copies the table instead.
    context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:
    from backend.db import make_engine
    from backend.settings import get_settings

    engine = make_engine(get_settings().resolved_database_url)
    with engine.begin() as conn:
        _run(conn)
