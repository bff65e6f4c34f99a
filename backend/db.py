"""Database engine, sessions and migrations, shared by the API and the worker processes.

SQLite runs in WAL mode with a busy timeout so the API and several workers can use one file at
once (readers never block the writer; writers wait instead of failing). Every state change is a
conditional UPDATE (see ``backend.jobs`` / ``backend.leases``), so correctness never depends on
SQLite's or PostgreSQL's isolation level.
"""
from __future__ import annotations

import contextlib
import fcntl
import zlib
from pathlib import Path
from typing import Iterator, Optional

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from backend.settings import Settings, get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite connections get WAL, a busy timeout and foreign keys."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                                              "check_same_thread": False},
                           pool_size=20, max_overflow=40)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - DB-API connection
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")  # durable enough with WAL, far fewer fsyncs
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    return engine


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Serialise migrations between processes starting together (API + workers)."""
    if engine.dialect.name == "sqlite":
        db_path = engine.url.database
        if not db_path or db_path == ":memory:":
            yield
            return
        lock_path = Path(db_path).with_name(Path(db_path).name + ".migrate.lock")
        with open(lock_path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
    elif engine.dialect.name == "postgresql":
        key = zlib.crc32(b"ddpm-studio-migrations")
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
    else:
        yield


def migrate(engine: Engine) -> None:
    """Apply the Alembic migrations up to head (idempotent, safe from several processes)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with _migration_lock(engine), engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def make_session_factory(engine: Engine, redis_url: Optional[str] = None) -> sessionmaker[Session]:
    """Sessions on ``engine``; with ``redis_url`` their commits send event wake-ups (backend.events)."""
    from backend.events import REDIS_URL_KEY

    # expire_on_commit=False: rows stay readable after commit (the API serialises them then).
    return sessionmaker(bind=engine, expire_on_commit=False, info={REDIS_URL_KEY: redis_url})


def open_database(settings: Optional[Settings] = None, run_migrations: bool = True) -> sessionmaker[Session]:
    """Engine + migrations + session factory for ``settings`` (default: the environment's)."""
    settings = settings or get_settings()
    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    if run_migrations:
        migrate(engine)
    return make_session_factory(engine, settings.redis_url)


def ping(session: Session) -> bool:
    try:
        session.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - health reports, never raises
        return False
