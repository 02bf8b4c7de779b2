"""Profile <-> subscription links: who owns and who is a member of which subscription.

The unit of work keeps these in step with its subscriptions. A change with few links to write
writes them in the subscription's own transaction ("links inside the transaction" below); a
change with many (a transaction takes at most 100 items, a subscription up to 1,000 members)
writes them right after it, versioned and idempotent ("writing the links after the
subscription's own transaction"), so no transaction grows with the member count.

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
- `former_link(table, cid, profile_id, subscription_id, role, now)` when a link goes away
  while the subscription stays (a member removed for good, a changed owner): the link item is
  replaced, at the same key, by a former link, `type="profile_link_former"`, `left_at`, without
  the gsi3 attributes. Access, the profile's `subscriptions` and `?subscription_status=` read
  only `profile_link` items; the billing history reads both, so a former owner still finds the
  payments it made and a removed member the time it had access. Re-adding the profile puts the
  link back over it.
- `delete_link(table, cid, profile_id, subscription_id, role)` when the subscription itself is
  deleted (inactive only; nothing of it is left to show). Cancelled subscriptions keep their
  links with status "cancelled" (billing history).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from botocore.exceptions import ClientError

from chalicelib.adapters.dynamodb.codec import format_time, parse_time
from chalicelib.adapters.dynamodb.due_index import (
    DUE_AT,
    DUE_ATTRIBUTE_NAMES,
    DUE_GROUP,
    DUE_PK,
    due_attributes,
)
from chalicelib.adapters.dynamodb.items import from_item, to_item, to_value
from chalicelib.domain.profiles import FormerLink, SubscriptionLink
from chalicelib.domain.subscriptions import Subscription

LINK_INDEX = "gsi3"
LINK_TYPE = "profile_link"
FORMER_LINK_TYPE = "profile_link_former"
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
        "type": LINK_TYPE,
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


def former_link(
    table: str, community_id: str, profile_id: str, subscription_id: str, role: str, now: datetime
) -> dict[str, Any]:
    """A Put entry that replaces the link by a former link (the profile left that role)."""
    attributes = {
        "type": FORMER_LINK_TYPE,
        "community_id": community_id,
        "profile_id": profile_id,
        "subscription_id": subscription_id,
        "role": role,
        "left_at": format_time(now),
        "updated_at": format_time(now),
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


def link_gone(
    table: str,
    community_id: str,
    profile_id: str,
    subscription_id: str,
    role: str,
    now: datetime,
    subscription_exists: bool,
) -> dict[str, Any]:
    """The entry for a link that goes away: a former link while the subscription exists."""
    if subscription_exists:
        return former_link(table, community_id, profile_id, subscription_id, role, now)
    return delete_link(table, community_id, profile_id, subscription_id, role)


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


def former_link_from_item(item: dict[str, Any]) -> FormerLink:
    return FormerLink(
        subscription_id=item["subscription_id"],
        role=item["role"],
        left_at=parse_time(item["left_at"]),
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
        items = [from_item(i) for i in response.get("Items", [])]
        links += [link_from_item(i) for i in items if i.get("type") == LINK_TYPE]
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


# --- the links a subscription state holds ---------------------------------------------------
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


# --- writing the links after the subscription's own transaction ------------------------------
# A transaction takes at most 100 items, so the links (one per member) are never part of it.
# The subscription's transaction stages ONE constant-size entry on the subscription's link
# state item (`links_state_entry`); `LinkWriter.apply` writes the links right after the commit
# (BatchWriteItem, 25 a call), and the "links" due-index group repairs what a crash between
# the two left behind.
#
# Link state item  pk=`C#<cid>#SUB#<sid>`  sk=`LINKS`
#   wanted       the subscription version whose links must be written (set in the transaction)
#   prev_wanted  the `wanted` before it (the transaction copies it)
#   written      the last `wanted` whose links were all written
#   pending      string set of `<profile_id>#<role>` that lost their link (removed members, a
#                changed owner, a deleted subscription) and may still hold a link item
#   lease_owner / lease_until (wall-clock epoch seconds): the one writer at work
#   due_pk/due_at/due_group="links" while `written` < `wanted`: the sweep's repair.
#
# Writers of one subscription never overlap: a writer first takes the lease (conditional
# update), and stops before its lease could run out (LEASE is longer than any Lambda runs).
# The lease holder writes the state as it is at `wanted`; if `wanted` moved on meanwhile, it
# goes on with the subscription as it is now before giving the lease back.
LINKS_SK = "LINKS"
LEASE_SECONDS = 16 * 60  # longer than the longest Lambda (15 minutes)
LEASE_MARGIN_SECONDS = 60  # no batch is started with less of the lease left
BATCH = 25  # BatchWriteItem's limit
ROUNDS = 3  # catching up with later writes, before the repair sweep takes over
# The sweep repairs a state item only this long after its transaction, so it does not race
# the writer that runs right after the commit.
REPAIR_DELAY = timedelta(minutes=2)

log = logging.getLogger(__name__)


def links_state_key(community_id: str, subscription_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"C#{community_id}#SUB#{subscription_id}"}, "sk": {"S": LINKS_SK}}


def _key_text(profile_id: str, role: str) -> str:
    return f"{profile_id}#{role}"


def _key_of(text: str) -> LinkKey:
    profile_id, _, role = text.rpartition("#")
    return profile_id, role


@dataclass(frozen=True)
class LinkChange:
    """One subscription write whose links must follow (`version`: the version written)."""

    community_id: str
    subscription_id: str
    before: Subscription | None
    after: Subscription | None
    version: int

    def changed(self) -> bool:
        return _links(self.before) != _links(self.after)

    def lost(self) -> set[str]:
        """The links the write takes away."""
        gone = _links(self.before).keys() - _links(self.after).keys()
        return {_key_text(profile_id, role) for profile_id, role in gone}


def links_state_entry(
    table: str, change: LinkChange, now: datetime, due_shards: int
) -> dict[str, Any]:
    """The subscription transaction's one entry for its links: what must be written, and a
    due-index entry that repairs it if nobody does."""
    due = due_attributes(change.subscription_id, "links", now + REPAIR_DELAY, due_shards)
    values: dict[str, Any] = {
        ":type": to_value("subscription_links"),
        ":id": to_value(change.subscription_id),
        ":cid": to_value(change.community_id),
        ":wanted": to_value(change.version),
        ":zero": to_value(0),
        ":due_pk": to_value(due[DUE_PK]),
        ":due_at": to_value(due[DUE_AT]),
        ":due_group": to_value(due[DUE_GROUP]),
    }
    expression = (
        "SET #type = :type, id = :id, community_id = :cid,"
        " prev_wanted = if_not_exists(wanted, :zero), wanted = :wanted,"
        f" {DUE_PK} = :due_pk, {DUE_AT} = :due_at, {DUE_GROUP} = :due_group"
    )
    lost = change.lost()
    if lost:
        expression += " ADD pending :lost"
        values[":lost"] = {"SS": sorted(lost)}
    return {
        "Update": {
            "TableName": table,
            "Key": links_state_key(change.community_id, change.subscription_id),
            "UpdateExpression": expression,
            "ExpressionAttributeNames": {"#type": "type"},
            "ExpressionAttributeValues": values,
        }
    }


# --- links inside the transaction ------------------------------------------------------------
# When the state item says every link is written (`written == wanted`, or no item yet: a new
# subscription), the link items are exactly those of the subscription as read (`before`), so
# the change's link writes are its difference: a Put per link that is new or changed, a Delete
# per link it takes away. The unit of work stages them in the subscription's own transaction
# (when they fit) with `links_written_entry`, which marks them written on that very condition;
# if a writer left them behind meanwhile, the condition fails and the change goes through the
# LinkWriter instead. Puts and Deletes are idempotent: a retried change writes the same.
def link_writes(table: str, change: LinkChange, now: datetime) -> list[dict[str, Any]]:
    """The Put/Delete entries that take the links from `change.before` to `change.after`."""
    before, after = _links(change.before), _links(change.after)
    cid, sid = change.community_id, change.subscription_id
    entries = [
        put_link(table, cid, profile_id, sid, role, status, now, payment_method_id=method)
        for (profile_id, role), (status, method) in after.items()
        if before.get((profile_id, role)) != (status, method)
    ]
    entries += [
        link_gone(table, cid, profile_id, sid, role, now, change.after is not None)
        for profile_id, role in sorted(before.keys() - after.keys())
    ]
    return entries


def links_written_entry(table: str, change: LinkChange) -> dict[str, Any]:
    """The state entry of a change whose link writes ride in its own transaction: `wanted` and
    `written` move to its version together, on the condition that every link was written before
    (else the links are not those of `change.before`, and the transaction is refused)."""
    version = to_value(change.version)
    return {
        "Update": {
            "TableName": table,
            "Key": links_state_key(change.community_id, change.subscription_id),
            "UpdateExpression": "SET #type = :type, id = :id, community_id = :cid,"
            " prev_wanted = :version, wanted = :version, written = :version"
            f" REMOVE {', '.join(DUE_ATTRIBUTE_NAMES)}",
            "ConditionExpression": "attribute_not_exists(pk) OR written = wanted",
            "ExpressionAttributeNames": {"#type": "type"},
            "ExpressionAttributeValues": {
                ":type": to_value("subscription_links"),
                ":id": to_value(change.subscription_id),
                ":cid": to_value(change.community_id),
                ":version": version,
            },
        }
    }


@dataclass(frozen=True)
class LinkState:
    wanted: int
    prev_wanted: int
    written: int
    pending: frozenset[str]

    @staticmethod
    def from_item(item: dict[str, Any]) -> LinkState:
        return LinkState(
            wanted=int(item.get("wanted", {}).get("N", "0")),
            prev_wanted=int(item.get("prev_wanted", {}).get("N", "0")),
            written=int(item.get("written", {}).get("N", "0")),
            pending=frozenset(item.get("pending", {}).get("SS", [])),
        )


class SubscriptionReader(Protocol):
    def find(self, community_id: str, subscription_id: str) -> Subscription | None: ...


class LeaseLost(Exception):
    """The writer's lease is (nearly) over: it stops; the repair sweep finishes."""


class LinkWriter:
    """Writes the link items of a subscription outside its transaction, one writer at a time
    (the lease on the link state item), and repairs them from the link state item."""

    def __init__(
        self,
        client: Any,
        table: str,
        due_shards: int,
        subscriptions: SubscriptionReader,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._table = table
        self._shards = due_shards
        self._subscriptions = subscriptions
        self._wall = wall

    def state_entry(self, change: LinkChange, now: datetime) -> dict[str, Any]:
        return links_state_entry(self._table, change, now, self._shards)

    def apply(self, change: LinkChange, now: datetime) -> None:
        """Write the links of a committed change. A failure leaves the repair due."""
        try:
            self._run(change.community_id, change.subscription_id, change, now)
        except Exception:  # the money is committed; the sweep finishes the links
            log.warning(
                "links of subscription %s left to the repair sweep",
                change.subscription_id,
                exc_info=True,
            )

    def repair(self, community_id: str, subscription_id: str, now: datetime) -> str:
        """The "links" due group: write every link of the subscription as it is now."""
        return self._run(community_id, subscription_id, None, now)

    # --- the lease and the rounds ------------------------------------------------------------
    def _run(
        self, community_id: str, subscription_id: str, change: LinkChange | None, now: datetime
    ) -> str:
        token = secrets.token_hex(8)
        lease_until = self._wall() + LEASE_SECONDS
        state = self._take_lease(community_id, subscription_id, token, lease_until)
        if state is None:
            if change is None:  # the repair: come back after the writer at work
                self._postpone(community_id, subscription_id, now)
            return "links_busy"
        finished = False
        try:
            for _ in range(ROUNDS):
                if state.written >= state.wanted:
                    return "links_current"
                if change is not None and change.version == state.wanted:
                    sub, links = change.after, _links(change.after)
                    if state.written == state.prev_wanted:
                        # Complete before this change: write only what changed.
                        previous = _links(change.before)
                        links = {k: v for k, v in links.items() if previous.get(k) != v}
                else:
                    sub = self._subscriptions.find(community_id, subscription_id)
                    links = _links(sub)
                gone = {t for t in state.pending if _key_of(t) not in _links(sub)}
                self._write(
                    community_id, subscription_id, links, gone, sub is not None, lease_until, now
                )
                finished = self._finish(community_id, subscription_id, state, gone, token)
                if finished:
                    return "links_repaired" if change is None else "links_written"
                change = None
                state = self._read(community_id, subscription_id)
            return "links_behind"
        finally:
            if not finished:  # a finished round gave the lease back itself
                self._release(community_id, subscription_id, token)

    def _read(self, community_id: str, subscription_id: str) -> LinkState:
        item = self._client.get_item(
            TableName=self._table,
            Key=links_state_key(community_id, subscription_id),
            ConsistentRead=True,
        ).get("Item")
        return LinkState.from_item(item or {})

    def _take_lease(
        self, community_id: str, subscription_id: str, token: str, lease_until: float
    ) -> LinkState | None:
        wall = self._wall()
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key=links_state_key(community_id, subscription_id),
                UpdateExpression="SET lease_owner = :token, lease_until = :until",
                ConditionExpression="attribute_exists(pk) AND "
                "(attribute_not_exists(lease_until) OR lease_until < :wall)",
                ExpressionAttributeValues={
                    ":token": to_value(token),
                    ":until": to_value(int(lease_until)),
                    ":wall": to_value(int(wall)),
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return None
            raise
        return LinkState.from_item(answer["Attributes"])

    def _postpone(self, community_id: str, subscription_id: str, now: datetime) -> None:
        due = due_attributes(subscription_id, "links", now + REPAIR_DELAY, self._shards)
        try:
            self._client.update_item(
                TableName=self._table,
                Key=links_state_key(community_id, subscription_id),
                UpdateExpression=f"SET {DUE_AT} = :due_at",
                ConditionExpression=f"attribute_exists({DUE_PK})",
                ExpressionAttributeValues={":due_at": to_value(due[DUE_AT])},
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    def _release(self, community_id: str, subscription_id: str, token: str) -> None:
        try:
            self._client.update_item(
                TableName=self._table,
                Key=links_state_key(community_id, subscription_id),
                UpdateExpression="REMOVE lease_owner, lease_until",
                ConditionExpression="lease_owner = :token",
                ExpressionAttributeValues={":token": to_value(token)},
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    # --- the writes ----------------------------------------------------------------------------
    def _write(
        self,
        community_id: str,
        subscription_id: str,
        links: dict[LinkKey, tuple[str, str | None]],
        gone: set[str],
        subscription_exists: bool,
        lease_until: float,
        now: datetime,
    ) -> None:
        requests: list[dict[str, Any]] = []
        for (profile_id, role), (status, method) in links.items():
            entry = put_link(
                self._table,
                community_id,
                profile_id,
                subscription_id,
                role,
                status,
                now,
                payment_method_id=method,
            )
            requests.append({"PutRequest": {"Item": entry["Put"]["Item"]}})
        for text in sorted(gone):
            profile_id, role = _key_of(text)
            entry = link_gone(
                self._table,
                community_id,
                profile_id,
                subscription_id,
                role,
                now,
                subscription_exists,
            )
            if "Put" in entry:
                requests.append({"PutRequest": {"Item": entry["Put"]["Item"]}})
            else:
                requests.append({"DeleteRequest": {"Key": entry["Delete"]["Key"]}})
        for start in range(0, len(requests), BATCH):
            if self._wall() > lease_until - LEASE_MARGIN_SECONDS:
                raise LeaseLost(f"lease on the links of {subscription_id} ran out")
            unprocessed = {self._table: requests[start : start + BATCH]}
            while unprocessed:
                answer = self._client.batch_write_item(RequestItems=unprocessed)
                unprocessed = answer.get("UnprocessedItems") or {}

    def _finish(
        self,
        community_id: str,
        subscription_id: str,
        state: LinkState,
        gone: set[str],
        token: str,
    ) -> bool:
        """Mark `state.wanted` written, drop its repair and give the lease back, unless a later
        write wants more."""
        removed = ", ".join((*DUE_ATTRIBUTE_NAMES, "lease_owner", "lease_until"))
        expression = f"SET written = :wanted REMOVE {removed}"
        values: dict[str, Any] = {":wanted": to_value(state.wanted), ":token": to_value(token)}
        if gone:
            expression += " DELETE pending :gone"
            values[":gone"] = {"SS": sorted(gone)}
        try:
            self._client.update_item(
                TableName=self._table,
                Key=links_state_key(community_id, subscription_id),
                UpdateExpression=expression,
                ConditionExpression="wanted = :wanted AND lease_owner = :token",
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True
