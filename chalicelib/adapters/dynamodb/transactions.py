"""TransactWriteItems with DynamoDB's failure reasons turned into domain errors."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from chalicelib.domain.errors import Conflict, DomainError, Unavailable

MAX_TRANSACTION_ITEMS = 100


def transact(
    client: Any, entries: list[dict[str, Any]], conflict: DomainError | None = None
) -> None:
    """Write all entries or none. A failed condition raises `conflict` (default: Conflict)."""
    if not entries:
        return
    try:
        client.transact_write_items(TransactItems=entries)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "TransactionCanceledException":
            reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
            if "ConditionalCheckFailed" in reasons:
                raise conflict or Conflict("The object was changed concurrently; retry.") from None
            if "TransactionConflict" in reasons:
                raise Conflict("The object was changed concurrently; retry.") from None
        if code in {
            "ProvisionedThroughputExceededException",
            "ThrottlingException",
            "TransactionInProgressException",
            "InternalServerError",
        }:
            raise Unavailable("The database is busy; retry shortly.") from None
        raise


def is_condition_failure(error: Exception) -> bool:
    if not isinstance(error, ClientError):
        return False
    code: str = error.response.get("Error", {}).get("Code", "")
    return code == "ConditionalCheckFailedException"
