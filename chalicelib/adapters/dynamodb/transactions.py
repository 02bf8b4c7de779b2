"""TransactWriteItems with DynamoDB's failure reasons turned into domain errors, in ONE place.

`TRANSIENT_CODES` is the one list of error codes (and cancellation reasons) that a retry can
fix. A `TransactionConflict` (two transactions touching one item at once; real DynamoDB raises
it, moto never does) is a lost race like a failed version condition: `ConcurrentChange`, which
the services answer by reading again (services/retrying.py).
"""

from __future__ import annotations

import uuid
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.domain.errors import (
    ConcurrentChange,
    Conflict,
    DomainError,
    DuplicateEvent,
    Unavailable,
)

MAX_TRANSACTION_ITEMS = 100

TRANSIENT_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ProvisionedThroughputExceeded",
        "ThrottlingException",
        "Throttling",
        "ThrottlingError",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionInProgressException",
        "TransactionConflict",
    }
)


def _concurrent() -> ConcurrentChange:
    return ConcurrentChange("The object was changed concurrently; read it again and retry.")


class ConditionsFailed(ConcurrentChange):
    """A ConcurrentChange that names the entries whose condition failed (their positions), for
    a caller that can tell a condition it chose to risk from a lost race."""

    def __init__(
        self, entries: frozenset[int], items: dict[int, dict[str, Any]] | None = None
    ) -> None:
        super().__init__("The object was changed concurrently; read it again and retry.")
        self.entries = entries
        # The items as they stood, by position, for entries that ask for them
        # (`ReturnValuesOnConditionCheckFailure: ALL_OLD`), in DynamoDB's wire format.
        self.items = items or {}


def commit_transaction(
    client: Any,
    entries: list[dict[str, Any]],
    *,
    guarded_first: bool = False,
    conflict: DomainError | None = None,
) -> None:
    """Write all entries or none.

    A failed condition raises `conflict` (default ConditionsFailed: a ConcurrentChange naming
    the entries); with `guarded_first`, a failed condition of the first entry alone (an
    inbound event's record) raises DuplicateEvent. A transaction conflict raises
    ConcurrentChange; throttling and DynamoDB's own failures raise Unavailable.

    Each commit carries its own ClientRequestToken, which botocore's retries resend: should an
    attempt be applied and its answer lost (a read timeout), DynamoDB answers the retry with
    success instead of failing it on the conditions the first attempt changed (which read as
    someone else's change: an activation refused as "in progress", a refund as "nothing
    left")."""
    if not entries:
        return
    try:
        client.transact_write_items(TransactItems=entries, ClientRequestToken=uuid.uuid4().hex)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "TransactionCanceledException":
            cancelled = error.response.get("CancellationReasons", [])
            reasons = [r.get("Code") for r in cancelled]
            if guarded_first and reasons and reasons[0] == "ConditionalCheckFailed":
                raise DuplicateEvent() from None
            if "ConditionalCheckFailed" in reasons:
                failed = frozenset(
                    n for n, reason in enumerate(reasons) if reason == "ConditionalCheckFailed"
                )
                items = {n: r["Item"] for n, r in enumerate(cancelled) if r.get("Item")}
                raise conflict or ConditionsFailed(failed, items) from None
            if "TransactionConflict" in reasons:
                raise _concurrent() from None
            if set(reasons) & TRANSIENT_CODES:
                raise Unavailable("The database is busy; retry shortly.") from None
        if code in TRANSIENT_CODES:
            raise Unavailable("The database is busy; retry shortly.") from None
        raise


def transact(
    client: Any, entries: list[dict[str, Any]], conflict: DomainError | None = None
) -> None:
    """Write all entries or none. A failed condition raises `conflict` (default: Conflict)."""
    commit_transaction(
        client,
        entries,
        conflict=conflict or Conflict("The object was changed concurrently; retry."),
    )


def is_transient(error: BaseException) -> bool:
    """A failure of AWS that a retry can fix: throttling / 5xx, timeouts, lost connections."""
    from botocore.exceptions import ConnectionError, HTTPClientError

    if isinstance(error, ConnectionError | HTTPClientError):
        return True
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        if code in TRANSIENT_CODES:
            return True
        if code == "TransactionCanceledException":
            reasons = {r.get("Code") for r in error.response.get("CancellationReasons", [])}
            return bool(reasons & TRANSIENT_CODES)
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return int(status) >= 500
    return False


def is_condition_failure(error: Exception) -> bool:
    if not isinstance(error, ClientError):
        return False
    code: str = error.response.get("Error", {}).get("Code", "")
    return code == "ConditionalCheckFailedException"
