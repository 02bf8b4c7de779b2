"""Pay-now links (issue 15): the stored links, each subscription's current one, per-token
request counters.

Item layout (a link is looked up by its token's hash on every page request, so it is keyed by
that, like API keys):
- link     pk=`PAYLINK#<sha256 hex of the token>` sk=`PAYLINK`
           attrs: type="payment_link", community_id, subscription_id, purpose,
           outstanding_since, issued_at, link_expires_at (RFC 3339), resent_at?,
           expires_at (epoch s, the table's TTL: 90 days after the link expired, so an expired
           link still answers "expired" meanwhile)
- current  pk=`C#<cid>#PAYLINK#<subscription_id>` sk=`CURRENT`
           attrs: type="payment_link_current", token_hash, expires_at (TTL, as the link's)
- counter  pk=`PAYLINK#<hash>` sk=`HITS#<yyyymmddHHMM>`
           attrs: hits (ADDed), expires_at (TTL: two minutes after its minute)
A link and its subscription's current pointer are written in one transaction; a link is valid
only while the pointer names it, so issuing a new one invalidates every older one at once.
The token itself is never stored.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from chalicelib.adapters.dynamodb.codec import format_time, parse_time
from chalicelib.adapters.dynamodb.items import from_item, to_item, to_value
from chalicelib.adapters.dynamodb.transactions import commit_transaction, is_condition_failure
from chalicelib.domain.payment_links import PaymentLink

KEPT_AFTER_EXPIRY = timedelta(days=90)
COUNTER_KEPT = timedelta(minutes=2)


def link_key(token_hash: str) -> dict[str, Any]:
    return {"pk": {"S": f"PAYLINK#{token_hash}"}, "sk": {"S": "PAYLINK"}}


def current_key(community_id: str, subscription_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"C#{community_id}#PAYLINK#{subscription_id}"}, "sk": {"S": "CURRENT"}}


def _epoch(when: datetime) -> int:
    return int(when.timestamp())


class PaymentLinkStore:
    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table

    def replace_current(self, link: PaymentLink) -> None:
        """Store `link` and make it its subscription's only valid link (one transaction)."""
        ttl = _epoch(link.expires_at + KEPT_AFTER_EXPIRY)
        item = to_item(
            {
                "type": "payment_link",
                "community_id": link.community_id,
                "subscription_id": link.subscription_id,
                "purpose": link.purpose,
                "outstanding_since": format_time(link.outstanding_since),
                "issued_at": format_time(link.issued_at),
                "link_expires_at": format_time(link.expires_at),
                "expires_at": ttl,
            }
        )
        pointer = to_item(
            {"type": "payment_link_current", "token_hash": link.token_hash, "expires_at": ttl}
        )
        commit_transaction(
            self._client,
            [
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": {**link_key(link.token_hash), **item},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": {
                            **current_key(link.community_id, link.subscription_id),
                            **pointer,
                        },
                    }
                },
            ],
        )

    def find(self, token_hash: str) -> tuple[PaymentLink, bool] | None:
        """The link and whether it is still its subscription's current one."""
        found = self._client.get_item(
            TableName=self._table, Key=link_key(token_hash), ConsistentRead=True
        ).get("Item")
        if found is None:
            return None
        data = from_item(found)
        link = PaymentLink(
            token_hash=token_hash,
            community_id=str(data["community_id"]),
            subscription_id=str(data["subscription_id"]),
            purpose=str(data["purpose"]),
            outstanding_since=parse_time(str(data["outstanding_since"])),
            issued_at=parse_time(str(data["issued_at"])),
            expires_at=parse_time(str(data["link_expires_at"])),
        )
        pointer = self._client.get_item(
            TableName=self._table,
            Key=current_key(link.community_id, link.subscription_id),
            ConsistentRead=True,
        ).get("Item")
        current = pointer is not None and from_item(pointer).get("token_hash") == token_hash
        return link, current

    def claim_resend(self, token_hash: str, now: datetime) -> bool:
        """Mark that this link asked for a fresh one; False when it did already (once each)."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=link_key(token_hash),
                UpdateExpression="SET resent_at = :now",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(resent_at)",
                ExpressionAttributeValues={":now": to_value(format_time(now))},
            )
        except Exception as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def release_resend(self, token_hash: str, claimed_at: datetime) -> None:
        """Give back the resend `claim_resend(token_hash, claimed_at)` took (nothing was sent)."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=link_key(token_hash),
                UpdateExpression="REMOVE resent_at",
                ConditionExpression="resent_at = :claimed",
                ExpressionAttributeValues={":claimed": to_value(format_time(claimed_at))},
            )
        except Exception as error:
            if not is_condition_failure(error):
                raise

    def count_request(self, token_hash: str, now: datetime) -> int:
        """Count one request of this token in `now`'s minute; the count so far this minute."""
        minute = now.replace(second=0, microsecond=0)
        answer = self._client.update_item(
            TableName=self._table,
            Key={
                "pk": {"S": f"PAYLINK#{token_hash}"},
                "sk": {"S": f"HITS#{minute.strftime('%Y%m%d%H%M')}"},
            },
            UpdateExpression="ADD hits :one SET expires_at = :ttl",
            ExpressionAttributeValues={
                ":one": to_value(1),
                ":ttl": to_value(_epoch(minute + COUNTER_KEPT)),
            },
            ReturnValues="UPDATED_NEW",
        )
        return int(from_item(answer["Attributes"])["hits"])
