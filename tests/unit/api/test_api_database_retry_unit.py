"""Which database failures the API answers 503 (retry) and with which code:
the exception classes psycopg raises for each SQLSTATE."""

from __future__ import annotations

import psycopg
import pytest
from psycopg_pool import PoolTimeout

from api.app import database_retry


@pytest.mark.parametrize(
    ("exc", "code", "retry_after"),
    [
        (psycopg.errors.QueryCanceled(), "database_timeout", "5"),  # 57014 statement_timeout
        # 25P03: an InternalError, not an OperationalError, yet a timeout all the same
        (psycopg.errors.IdleInTransactionSessionTimeout(), "database_timeout", "5"),
        (psycopg.errors.DeadlockDetected(), "database_conflict", "1"),  # 40P01
        (psycopg.errors.SerializationFailure(), "database_conflict", "1"),  # 40001
        (psycopg.errors.AdminShutdown(), "database_unavailable", "5"),  # 57P01 a restart
        (psycopg.OperationalError("connection refused"), "database_unavailable", "5"),
        (PoolTimeout(), "database_unavailable", "5"),
    ],
)
def test_retryable_database_failures(exc: BaseException, code: str, retry_after: str) -> None:
    found = database_retry(exc)
    assert found is not None and (found[0], found[2]) == (code, retry_after)


@pytest.mark.parametrize(
    "exc",
    [psycopg.errors.UndefinedTable(), psycopg.errors.DataError(), ValueError("a bug")],
)
def test_other_failures_are_not_retried(exc: BaseException) -> None:
    assert database_retry(exc) is None
