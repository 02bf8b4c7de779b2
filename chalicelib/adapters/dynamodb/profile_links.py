"""Profile <-> subscription links: who owns and who is a member of which subscription.

The subscription service keeps these in step with its subscriptions by adding the entries
built here to its own TransactWriteItems (same transaction as the subscription change).

Item layout (one item per profile, subscription and role; an owner who is also a member has
two, because access depends on membership alone):
- link  pk=`C#<cid>#PROFILE#<profile_id>`   sk=`SUB#<subscription_id>#<role>`
        attrs: type="profile_link", community_id, profile_id, subscription_id,
        role ("owner"|"member"), status (the subscription's status), updated_at,
        payment_method_id (owner links only: the card the subscription charges, "pm_..."; the
        payment-method routes refuse to detach a card that a live subscription -- active,
        failed_payment or expiring -- names here)
        gsi3pk=`C#<cid>#SUBSTATUS#<status>`  gsi3sk=`<profile_id>#<subscription_id>#<role>`
The links live in the profile's partition, so one Query reads a profile with all its links;
the gsi3 entries make `GET /v1/profiles?subscription_status=` a Query.

Writing them (all return TransactWriteItems entries):
- `put_link(table, cid, profile_id, subscription_id, role, status, now, payment_method_id=None)`
  when a profile becomes owner or member (create / add member / change owner).
- `update_link(table, cid, profile_id, subscription_id, role, now, status=...,
  payment_method_id=...)`
  on every status change, and on the owner link when the subscription's card changes.
- `delete_link(table, cid, profile_id, subscription_id, role)` when a member is removed for
  good, the owner changes, or an inactive subscription is deleted. Cancelled subscriptions keep
  their links with status "cancelled" (billing history).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chalicelib.adapters.dynamodb.items import from_item, to_item, to_value
from chalicelib.adapters.dynamodb.timestamps import format_time
from chalicelib.domain.profiles import SubscriptionLink
from chalicelib.domain.subscriptions import Subscription

LINK_INDEX = "gsi3"
_UNSET: Any = object()


def profile_partition(community_id: str, profile_id: str) -> str:
    return f"C#{community_id}#PROFILE#{profile_id}"


def status_partition(community_id: str, status: str) -> str:
    return f"C#{community_id}#SUBSTATUS#{status}"


def link_key(community_id: str, profile_id: str, subscription_id: str, role: str) -> dict[str, Any]:
    return {
        "pk": {"S": profile_partition(community_id, profile_id)},
        "sk": {"S": f"SUB#{subscription_id}#{role}"},
    }


def put_link(
    table: str,
    community_id: str,
    profile_id: str,
    subscription_id: str,
    role: str,
    status: str,
    now: datetime,
    payment_method_id: str | None = None,
) -> dict[str, Any]:
    """A Put entry for the link (replaces an existing one for the same role)."""
    attributes = {
        "type": "profile_link",
        "community_id": community_id,
        "profile_id": profile_id,
        "subscription_id": subscription_id,
        "role": role,
        "status": status,
        "payment_method_id": payment_method_id if role == "owner" else None,
        "updated_at": format_time(now),
        "gsi3pk": status_partition(community_id, status),
        "gsi3sk": f"{profile_id}#{subscription_id}#{role}",
    }
    return {
        "Put": {
            "TableName": table,
            "Item": {
                **link_key(community_id, profile_id, subscription_id, role),
                **to_item(attributes),
            },
        }
    }


def update_link(
    table: str,
    community_id: str,
    profile_id: str,
    subscription_id: str,
    role: str,
    now: datetime,
    *,
    status: str = _UNSET,
    payment_method_id: str | None = _UNSET,
) -> dict[str, Any]:
    """An Update entry (the link must exist): new status and/or card (None removes the card)."""
    sets = ["updated_at = :now"]
    removes: list[str] = []
    values: dict[str, Any] = {":now": to_value(format_time(now))}
    names: dict[str, str] = {}
    if status is not _UNSET:
        sets += ["#status = :status", "gsi3pk = :g3pk"]
        names["#status"] = "status"
        values[":status"] = to_value(status)
        values[":g3pk"] = to_value(status_partition(community_id, status))
    if payment_method_id is not _UNSET:
        if payment_method_id is None:
            removes.append("payment_method_id")
        else:
            sets.append("payment_method_id = :pm")
            values[":pm"] = to_value(payment_method_id)
    expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
    update: dict[str, Any] = {
        "TableName": table,
        "Key": link_key(community_id, profile_id, subscription_id, role),
        "UpdateExpression": expression,
        "ConditionExpression": "attribute_exists(pk)",
        "ExpressionAttributeValues": values,
    }
    if names:
        update["ExpressionAttributeNames"] = names
    return {"Update": update}


def delete_link(
    table: str, community_id: str, profile_id: str, subscription_id: str, role: str
) -> dict[str, Any]:
    return {
        "Delete": {
            "TableName": table,
            "Key": link_key(community_id, profile_id, subscription_id, role),
        }
    }


def link_from_item(item: dict[str, Any]) -> SubscriptionLink:
    return SubscriptionLink(
        subscription_id=item["subscription_id"],
        role=item["role"],
        status=item["status"],
        payment_method_id=item.get("payment_method_id"),
    )


def links_for_profile(
    client: Any, table: str, community_id: str, profile_id: str
) -> list[SubscriptionLink]:
    """Every link of one profile (strongly consistent)."""
    links: list[SubscriptionLink] = []
    kwargs: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :sub)",
        "ExpressionAttributeValues": {
            ":pk": to_value(profile_partition(community_id, profile_id)),
            ":sub": to_value("SUB#"),
        },
        "ConsistentRead": True,
    }
    while True:
        response = client.query(**kwargs)
        links += [link_from_item(from_item(i)) for i in response.get("Items", [])]
        if "LastEvaluatedKey" not in response:
            return links
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def profile_ids_with_status(
    client: Any,
    table: str,
    community_id: str,
    status: str,
    after_profile_id: str | None,
    batch: int = 100,
) -> tuple[list[str], bool]:
    """Distinct profile ids (ascending) with a link in `status`, after `after_profile_id`.

    Seeks past every link of `after_profile_id` with a key condition (`#` < `$`), so a profile
    with many links is returned once, whatever page boundary falls between its links. Returns
    up to one batch of ids and whether more may follow."""
    condition = "gsi3pk = :pk"
    values: dict[str, Any] = {":pk": to_value(status_partition(community_id, status))}
    if after_profile_id is not None:
        condition += " AND gsi3sk > :after"
        values[":after"] = to_value(f"{after_profile_id}$")
    response = client.query(
        TableName=table,
        IndexName=LINK_INDEX,
        KeyConditionExpression=condition,
        ExpressionAttributeValues=values,
        Limit=batch,
    )
    ids: list[str] = []
    for item in response.get("Items", []):
        profile_id = item["profile_id"]["S"]
        if not ids or ids[-1] != profile_id:
            ids.append(profile_id)
    return ids, "LastEvaluatedKey" in response


# --- keeping the links in step with a subscription change (in the same transaction) -----------
# A link exists for the owner and for every current member (a member leaving at period end
# keeps it until the removal takes effect); cancelled subscriptions keep their links.
LinkKey = tuple[str, str]  # (profile_id, role)


def _links(sub: Subscription | None) -> dict[LinkKey, tuple[str, str | None]]:
    if sub is None:
        return {}
    links: dict[LinkKey, tuple[str, str | None]] = {
        (sub.owner_id, "owner"): (sub.status, sub.payment_method_id)
    }
    for member in sub.members:
        links[(member.profile_id, "member")] = (sub.status, None)
    return links


def link_entries(
    table: str, before: Subscription | None, after: Subscription | None, now: datetime
) -> list[dict[str, Any]]:
    """Put the links that are new or changed, delete the ones that are gone."""
    old, new = _links(before), _links(after)
    subject = after or before
    if subject is None:
        return []
    entries: list[dict[str, Any]] = []
    for (profile_id, role), (status, method) in new.items():
        if old.get((profile_id, role)) != (status, method):
            entries.append(
                put_link(
                    table,
                    subject.community_id,
                    profile_id,
                    subject.id,
                    role,
                    status,
                    now,
                    payment_method_id=method,
                )
            )
    for profile_id, role in old.keys() - new.keys():
        entries.append(delete_link(table, subject.community_id, profile_id, subject.id, role))
    return entries
