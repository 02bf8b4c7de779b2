"""Community repository.

Item layout:
- community   pk=`C#<cid>#COMMUNITY`  sk=`COMMUNITY`
              attrs: type="community", id, name, currency, stripe_account_id?,
              application_fee_bps, created_at, past_stripe_account_ids? (SS: the accounts
              it charged on before; added when it changes account, never removed)
              gsi1pk=`COMMUNITIES`  gsi1sk=`<created_at>#<cid>`   (platform list, newest first)
              gsi2pk=`STRIPE_ACCOUNT#<acct_id>`  gsi2sk=`C#<cid>`  (only while it has an account;
              Connect webhooks find the community by `account` through `find_by_stripe_account`)
- account     pk=`STRIPE_ACCOUNT#<acct_id>`  sk=`STRIPE_ACCOUNT`  attrs: community_id
  guard       Written in the same transaction as the community: one connected account belongs
              to at most one community (else Connect events could not be routed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.adapters.dynamodb.codec import format_time, parse_time
from chalicelib.adapters.dynamodb.cursors import CursorCodec, Page, query_page
from chalicelib.adapters.dynamodb.items import from_item, to_item, to_value
from chalicelib.adapters.dynamodb.transactions import transact
from chalicelib.domain.communities import Community
from chalicelib.domain.errors import Conflict, NotFound

ALL_COMMUNITIES = "COMMUNITIES"


def community_key(community_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"C#{community_id}#COMMUNITY"}, "sk": {"S": "COMMUNITY"}}


def account_guard_key(stripe_account_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"STRIPE_ACCOUNT#{stripe_account_id}"}, "sk": {"S": "STRIPE_ACCOUNT"}}


def _account_taken(stripe_account_id: str) -> Conflict:
    return Conflict(f"Stripe account {stripe_account_id} already belongs to another community.")


@dataclass(frozen=True)
class CommunityPage:
    communities: list[Community]
    has_more: bool
    next_cursor: str | None


class CommunityRepository:
    def __init__(self, client: Any, table: str, cursors: CursorCodec) -> None:
        self._client = client
        self._table = table
        self._cursors = cursors

    # --- writes -------------------------------------------------------------------------
    def create_entries(self, community: Community) -> list[dict[str, Any]]:
        """TransactWriteItems entries that create `community` (and claim its account)."""
        item = to_item(self._attributes(community))
        entries: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": {**community_key(community.id), **item},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        ]
        if community.stripe_account_id:
            entries.append(self._claim_account(community.id, community.stripe_account_id))
        return entries

    def create(self, community: Community, extra: list[dict[str, Any]] | None = None) -> None:
        entries = self.create_entries(community) + list(extra or [])
        conflict = (
            _account_taken(community.stripe_account_id)
            if community.stripe_account_id
            else Conflict("The community already exists.")
        )
        transact(self._client, entries, conflict)

    def save_changes(self, before: Community, after: Community, reconnect: bool = False) -> None:
        """Store `after` (same id); moves the account claim when the account changed.

        `reconnect` clears the deauthorization flag the webhook sets, so charges resume.
        """
        names = {"#name": "name"}
        sets = ["#name = :name", "application_fee_bps = :fee"]
        removes: list[str] = []
        values: dict[str, Any] = {
            ":name": to_value(after.name),
            ":fee": to_value(after.application_fee_bps),
        }
        if after.stripe_account_id:
            sets += ["stripe_account_id = :acct", "gsi2pk = :g2pk", "gsi2sk = :g2sk"]
            values[":acct"] = to_value(after.stripe_account_id)
            values[":g2pk"] = to_value(f"STRIPE_ACCOUNT#{after.stripe_account_id}")
            values[":g2sk"] = to_value(f"C#{after.id}")
        else:
            removes += ["stripe_account_id", "gsi2pk", "gsi2sk"]
        if reconnect or not after.stripe_account_id:
            removes.append("stripe_deauthorized_at")
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        if before.stripe_account_id and before.stripe_account_id != after.stripe_account_id:
            # Its payments stay on the account it leaves (reconciliation still reads it).
            expression += " ADD past_stripe_account_ids :left"
            values[":left"] = {"SS": [before.stripe_account_id]}
        entries: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self._table,
                    "Key": community_key(after.id),
                    "UpdateExpression": expression,
                    "ConditionExpression": "attribute_exists(pk)",
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": values,
                }
            }
        ]
        if before.stripe_account_id != after.stripe_account_id:
            if before.stripe_account_id:
                entries.append(
                    {
                        "Delete": {
                            "TableName": self._table,
                            "Key": account_guard_key(before.stripe_account_id),
                            "ConditionExpression": "community_id = :cid",
                            "ExpressionAttributeValues": {":cid": to_value(after.id)},
                        }
                    }
                )
            if after.stripe_account_id:
                entries.append(self._claim_account(after.id, after.stripe_account_id))
        conflict = (
            _account_taken(after.stripe_account_id)
            if after.stripe_account_id and after.stripe_account_id != before.stripe_account_id
            else None
        )
        transact(self._client, entries, conflict)

    def write_if_exists(self, community_id: str, entries: list[dict[str, Any]]) -> None:
        """Write `entries` in one transaction with a check that the community exists."""
        check = {
            "ConditionCheck": {
                "TableName": self._table,
                "Key": community_key(community_id),
                "ConditionExpression": "attribute_exists(pk)",
            }
        }
        transact(self._client, [check, *entries], NotFound(f"Community {community_id} not found."))

    def _claim_account(self, community_id: str, stripe_account_id: str) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self._table,
                "Item": {
                    **account_guard_key(stripe_account_id),
                    **to_item({"type": "stripe_account", "community_id": community_id}),
                },
                "ConditionExpression": "attribute_not_exists(pk) OR community_id = :cid",
                "ExpressionAttributeValues": {":cid": to_value(community_id)},
            }
        }

    # --- reads --------------------------------------------------------------------------
    def find(self, community_id: str) -> Community | None:
        response = self._client.get_item(
            TableName=self._table, Key=community_key(community_id), ConsistentRead=True
        )
        item = response.get("Item")
        return _from_item(from_item(item)) if item else None

    def get(self, community_id: str) -> Community:
        community = self.find(community_id)
        if community is None:
            raise NotFound(f"Community {community_id} not found.")
        return community

    def list(self, limit: int, cursor: str | None) -> CommunityPage:
        page: Page = query_page(
            self._client,
            self._table,
            self._cursors,
            scope="communities",
            index="gsi1",
            key_condition="gsi1pk = :pk",
            values={":pk": to_value(ALL_COMMUNITIES)},
            limit=limit,
            cursor=cursor,
            newest_first=True,
        )
        return CommunityPage([_from_item(i) for i in page.items], page.has_more, page.next_cursor)

    def cursor_after(self, community: Community) -> str:
        """The `list` cursor that goes on with the communities listed after `community` (the
        webhook reconciliation resumes there)."""
        position = {
            **{name: value["S"] for name, value in community_key(community.id).items()},
            **{name: str(self._attributes(community)[name]) for name in ("gsi1pk", "gsi1sk")},
        }
        return self._cursors.encode("communities", position)

    def find_by_stripe_account(self, stripe_account_id: str) -> Community | None:
        """The community whose connected account is `stripe_account_id` (one GSI Query).

        Reads the gsi2 index (eventually consistent: a community created a moment ago may not
        be visible yet; webhooks are retried by Stripe)."""
        response = self._client.query(
            TableName=self._table,
            IndexName="gsi2",
            KeyConditionExpression="gsi2pk = :pk",
            ExpressionAttributeValues={":pk": to_value(f"STRIPE_ACCOUNT#{stripe_account_id}")},
            Limit=2,
        )
        items = [from_item(i) for i in response.get("Items", [])]
        communities = [i for i in items if i.get("type") == "community"]
        return _from_item(communities[0]) if communities else None

    @staticmethod
    def _attributes(community: Community) -> dict[str, Any]:
        created = format_time(community.created_at)
        attributes: dict[str, Any] = {
            "type": "community",
            "id": community.id,
            "name": community.name,
            "currency": community.currency,
            "stripe_account_id": community.stripe_account_id,
            "application_fee_bps": community.application_fee_bps,
            "created_at": created,
            "gsi1pk": ALL_COMMUNITIES,
            "gsi1sk": f"{created}#{community.id}",
        }
        if community.stripe_account_id:
            attributes["gsi2pk"] = f"STRIPE_ACCOUNT#{community.stripe_account_id}"
            attributes["gsi2sk"] = f"C#{community.id}"
        return attributes


def _from_item(item: dict[str, Any]) -> Community:
    return Community(
        id=item["id"],
        name=item["name"],
        currency=item["currency"],
        stripe_account_id=item.get("stripe_account_id"),
        application_fee_bps=int(item["application_fee_bps"]),
        created_at=parse_time(item["created_at"]),
        past_stripe_account_ids=frozenset(item.get("past_stripe_account_ids") or ()),
    )


def deauthorized_entry(table: str, community_id: str, account: str, at: datetime) -> dict[str, Any]:
    """Flag the community's connected account as having disconnected the platform, only while
    that account is still the community's (a reconnect wins)."""
    return {
        "Update": {
            "TableName": table,
            "Key": community_key(community_id),
            "UpdateExpression": "SET stripe_deauthorized_at = :at",
            "ConditionExpression": "stripe_account_id = :account",
            "ExpressionAttributeValues": {
                ":at": to_value(at.isoformat()),
                ":account": to_value(account),
            },
        }
    }
