"""Profile repository.

Item layout:
- profile  pk=`C#<cid>#PROFILE#<profile_id>`  sk=`PROFILE`
           attrs: type="profile", id, community_id, kind, name, email?, account_holder_id?,
           free_access, credit_<currency> (one per currency held, e.g. credit_usd), currency,
           created_at,
           stripe_customer_id?, stripe_customer_account? (the connected account it lives on),
           stripe_customer_deleted? (the last customer Stripe deleted)
           gsi1pk=`C#<cid>#PROFILES`                    gsi1sk=`<created_at>#<profile_id>`
           gsi2pk=`C#<cid>#PROFILES#EMAIL#<email, lowercased>`  (customers)   gsi2sk=same
           gsi3pk=`C#<cid>#PROFILES#FREE` (only while free_access)           gsi3sk=same
- links    in the same partition, see profile_links.py (sk=`SUB#...`).
Writes are UpdateItem of the fields they change, so a PATCH never overwrites a concurrent
credit-balance change made by the subscription service (`credit_change_entry`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from chalicelib.adapters.dynamodb.codec import format_time, parse_time
from chalicelib.adapters.dynamodb.cursors import CursorCodec, Page, bad_cursor, query_page
from chalicelib.adapters.dynamodb.items import from_item, to_item, to_value
from chalicelib.adapters.dynamodb.platform_events import outbox_entry
from chalicelib.adapters.dynamodb.profile_links import (
    FORMER_LINK_TYPE,
    LINK_TYPE,
    former_link_from_item,
    link_from_item,
    profile_ids_with_status,
    profile_partition,
)
from chalicelib.adapters.dynamodb.transactions import commit_transaction, is_condition_failure
from chalicelib.domain.errors import Conflict, NotFound
from chalicelib.domain.platform_events import AccessCheck
from chalicelib.domain.profiles import Profile

PROFILE_SK = "PROFILE"
MAX_STATUS_BATCHES = 10


def profile_key(community_id: str, profile_id: str) -> dict[str, Any]:
    return {"pk": {"S": profile_partition(community_id, profile_id)}, "sk": {"S": PROFILE_SK}}


CREDIT_PREFIX = "credit_"  # one attribute per currency: credit_usd, credit_eur, ...


def credit_attribute(currency: str) -> str:
    return f"{CREDIT_PREFIX}{currency}"


def credit_change_entry(
    table: str, community_id: str, profile_id: str, currency: str, delta: int
) -> dict[str, Any]:
    """An Update entry adding `delta` (negative: spending) to the credit in `currency`.

    Spending is conditional on enough credit in that currency, so no balance goes negative."""
    update: dict[str, Any] = {
        "TableName": table,
        "Key": profile_key(community_id, profile_id),
        "UpdateExpression": "SET #credit = if_not_exists(#credit, :zero) + :delta",
        "ExpressionAttributeNames": {"#credit": credit_attribute(currency)},
        "ExpressionAttributeValues": {":delta": to_value(delta), ":zero": to_value(0)},
        "ConditionExpression": "attribute_exists(pk)",
    }
    if delta < 0:
        update["ConditionExpression"] = "#credit >= :needed"
        update["ExpressionAttributeValues"][":needed"] = to_value(-delta)
    return {"Update": update}


def _credit_balances(item: dict[str, Any]) -> dict[str, int]:
    return {
        name.removeprefix(CREDIT_PREFIX): int(value)
        for name, value in item.items()
        if name.startswith(CREDIT_PREFIX) and len(name) == len(CREDIT_PREFIX) + 3
    }


@dataclass(frozen=True)
class ProfileFilters:
    kind: str | None = None
    free_access: bool | None = None
    email: str | None = None
    subscription_status: str | None = None

    def matches(self, profile: Profile) -> bool:
        return (
            (self.kind is None or profile.kind == self.kind)
            and (self.free_access is None or profile.free_access == self.free_access)
            and (
                self.email is None
                or (profile.email is not None and profile.email.lower() == self.email.lower())
            )
        )


@dataclass(frozen=True)
class ProfilePage:
    profiles: list[Profile]
    has_more: bool
    next_cursor: str | None


class ProfileRepository:
    def __init__(self, client: Any, table: str, cursors: CursorCodec) -> None:
        self._client = client
        self._table = table
        self._cursors = cursors

    # --- writes -------------------------------------------------------------------------
    def create(self, profile: Profile, access_check: AccessCheck | None = None) -> None:
        """`access_check`: tell the platform (outbox item in the same request)."""
        created = format_time(profile.created_at)
        attributes: dict[str, Any] = {
            "type": "profile",
            "id": profile.id,
            "community_id": profile.community_id,
            "kind": profile.kind,
            "name": profile.name,
            "account_holder_id": profile.account_holder_id,
            **{credit_attribute(c): amount for c, amount in profile.credit_balances.items()},
            "currency": profile.currency,
            "created_at": created,
            "gsi1pk": f"C#{profile.community_id}#PROFILES",
            "gsi1sk": f"{created}#{profile.id}",
            **self._email_attributes(profile),
            **self._free_access_attributes(profile),
        }
        put = {
            "TableName": self._table,
            "Item": {**profile_key(profile.community_id, profile.id), **to_item(attributes)},
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        record = self._access_record(access_check, profile.created_at)
        if record is None:
            self._client.put_item(**put)
        else:
            commit_transaction(self._client, [{"Put": put}, record])

    def _access_record(self, check: AccessCheck | None, now: datetime) -> dict[str, Any] | None:
        return None if check is None else outbox_entry(self._table, (), (check,), now)

    def save_details(
        self, profile: Profile, access_check: AccessCheck | None = None, now: datetime | None = None
    ) -> None:
        """Store name, email and free access (and their index entries) of an existing profile;
        with `access_check`, the platform is told in the same request (outbox)."""
        attributes = {
            "name": profile.name,
            **self._email_attributes(profile),
            **self._free_access_attributes(profile),
        }
        sets: list[str] = []
        removes: list[str] = []
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        optional = ("email", "gsi2pk", "gsi2sk", "gsi3pk", "gsi3sk")
        for position, name in enumerate(("name", "free_access", *optional)):
            names[f"#a{position}"] = name
            if name in attributes and attributes[name] is not None:
                sets.append(f"#a{position} = :v{position}")
                values[f":v{position}"] = to_value(attributes[name])
            else:
                removes.append(f"#a{position}")
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        record = self._access_record(access_check, now or profile.created_at)
        if record is not None:
            update = {
                "TableName": self._table,
                "Key": profile_key(profile.community_id, profile.id),
                "UpdateExpression": expression,
                "ConditionExpression": "attribute_exists(pk)",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
            commit_transaction(
                self._client,
                [{"Update": update}, record],
                conflict=NotFound(f"Profile {profile.id} not found."),
            )
            return
        try:
            self._client.update_item(
                TableName=self._table,
                Key=profile_key(profile.community_id, profile.id),
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except Exception as error:
            if is_condition_failure(error):
                raise NotFound(f"Profile {profile.id} not found.") from None
            raise

    def set_stripe_customer(
        self,
        community_id: str,
        profile_id: str,
        customer_id: str,
        account: str | None,
        previous_customer_id: str | None,
    ) -> None:
        """Record the profile's Stripe customer, unless another request recorded one first."""
        condition = (
            "attribute_not_exists(stripe_customer_id)"
            if previous_customer_id is None
            else "stripe_customer_id = :previous"
        )
        values: dict[str, Any] = {":customer": to_value(customer_id)}
        if previous_customer_id is not None:
            values[":previous"] = to_value(previous_customer_id)
        expression = "SET stripe_customer_id = :customer"
        if account is None:
            expression += " REMOVE stripe_customer_account"
        else:
            expression += ", stripe_customer_account = :account"
            values[":account"] = to_value(account)
        try:
            self._client.update_item(
                TableName=self._table,
                Key=profile_key(community_id, profile_id),
                UpdateExpression=expression,
                ConditionExpression=f"attribute_exists(pk) AND ({condition})",
                ExpressionAttributeValues=values,
            )
        except Exception as error:
            if is_condition_failure(error):
                raise Conflict(
                    "The profile's Stripe customer changed concurrently; retry."
                ) from None
            raise

    def forget_stripe_customer(self, community_id: str, profile_id: str, customer_id: str) -> bool:
        """Stripe deleted `customer_id`: the profile has no customer from now on (and keeps the
        deleted id in `stripe_customer_deleted`). False when the profile's customer is another
        one (or none): nothing changes."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=profile_key(community_id, profile_id),
                UpdateExpression="SET stripe_customer_deleted = :gone "
                "REMOVE stripe_customer_id, stripe_customer_account",
                ConditionExpression="attribute_exists(pk) AND stripe_customer_id = :gone",
                ExpressionAttributeValues={":gone": to_value(customer_id)},
            )
        except Exception as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    @staticmethod
    def _email_attributes(profile: Profile) -> dict[str, Any]:
        if not profile.email:
            return {"email": None}
        created = format_time(profile.created_at)
        return {
            "email": profile.email,
            "gsi2pk": f"C#{profile.community_id}#PROFILES#EMAIL#{profile.email.lower()}",
            "gsi2sk": f"{created}#{profile.id}",
        }

    @staticmethod
    def _free_access_attributes(profile: Profile) -> dict[str, Any]:
        if not profile.free_access:
            return {"free_access": False}
        created = format_time(profile.created_at)
        return {
            "free_access": True,
            "gsi3pk": f"C#{profile.community_id}#PROFILES#FREE",
            "gsi3sk": f"{created}#{profile.id}",
        }

    # --- reads --------------------------------------------------------------------------
    def find(self, community_id: str, profile_id: str) -> Profile | None:
        """The profile with its subscription links (one strongly consistent Query)."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {
                ":pk": to_value(profile_partition(community_id, profile_id))
            },
            "ConsistentRead": True,
        }
        while True:
            response = self._client.query(**kwargs)
            items += [from_item(i) for i in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        profile_items = [i for i in items if i.get("sk") == PROFILE_SK]
        if not profile_items:
            return None
        links = tuple(link_from_item(i) for i in items if i.get("type") == LINK_TYPE)
        former = tuple(former_link_from_item(i) for i in items if i.get("type") == FORMER_LINK_TYPE)
        return replace(
            profile_from_item(profile_items[0]), subscriptions=links, former_subscriptions=former
        )

    def get_many(self, community_id: str, profile_ids: list[str]) -> dict[str, Profile]:
        """The profile items alone (no links), by id, in BatchGetItems of 100 keys."""
        found: dict[str, Profile] = {}
        wanted = list(dict.fromkeys(profile_ids))
        for start in range(0, len(wanted), 100):
            keys = [profile_key(community_id, pid) for pid in wanted[start : start + 100]]
            request: dict[str, Any] = {self._table: {"Keys": keys}}
            while request:
                response = self._client.batch_get_item(RequestItems=request)
                for raw in response.get("Responses", {}).get(self._table, []):
                    profile = profile_from_item(from_item(raw))
                    found[profile.id] = profile
                request = response.get("UnprocessedKeys") or {}
        return found

    def free_access_ids(self, community_id: str) -> set[str]:
        """Ids on the profiles' sparse free-access index (gsi3 `...#PROFILES#FREE`)."""
        ids: set[str] = set()
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "gsi3",
            "KeyConditionExpression": "gsi3pk = :pk",
            "ExpressionAttributeValues": {":pk": to_value(f"C#{community_id}#PROFILES#FREE")},
            "ProjectionExpression": "id",
        }
        while True:
            response = self._client.query(**request)
            ids |= {item["id"]["S"] for item in response.get("Items", []) if "id" in item}
            if not response.get("LastEvaluatedKey"):
                return ids
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def get(self, community_id: str, profile_id: str) -> Profile:
        """The profile, or NotFound (also for another community's profile)."""
        profile = self.find(community_id, profile_id)
        if profile is None:
            raise NotFound(f"Profile {profile_id} not found.")
        return profile

    def list(
        self, community_id: str, filters: ProfileFilters, limit: int, cursor: str | None
    ) -> ProfilePage:
        if filters.subscription_status is not None:
            return self._list_by_subscription_status(community_id, filters, limit, cursor)
        conditions: list[str] = []
        values: dict[str, Any] = {}
        names: dict[str, str] = {}
        if filters.email is not None:
            index, partition = "gsi2", f"C#{community_id}#PROFILES#EMAIL#{filters.email.lower()}"
        elif filters.free_access:
            index, partition = "gsi3", f"C#{community_id}#PROFILES#FREE"
        else:
            index, partition = "gsi1", f"C#{community_id}#PROFILES"
        if filters.kind is not None:
            conditions.append("#kind = :kind")
            names["#kind"] = "kind"
            values[":kind"] = to_value(filters.kind)
        if filters.free_access is not None and index != "gsi3":
            conditions.append("free_access = :free")
            values[":free"] = to_value(filters.free_access)
        values[":pk"] = to_value(partition)
        page: Page = query_page(
            self._client,
            self._table,
            self._cursors,
            scope=f"{index}:{partition}:{sorted(names.items())}:{sorted(conditions)}"
            f":{filters.kind}:{filters.free_access}",
            index=index,
            key_condition=f"{index}pk = :pk",
            values=values,
            names=names or None,
            filter_expression=" AND ".join(conditions) or None,
            limit=limit,
            cursor=cursor,
            newest_first=True,
        )
        profiles = [self.get(community_id, item["id"]) for item in page.items]
        return ProfilePage(profiles, page.has_more, page.next_cursor)

    def _list_by_subscription_status(
        self, community_id: str, filters: ProfileFilters, limit: int, cursor: str | None
    ) -> ProfilePage:
        """Profiles (by id) that own or are a member of a subscription in that status."""
        scope = (
            f"substatus:{community_id}:{filters.subscription_status}"
            f":{filters.kind}:{filters.free_access}:{filters.email}"
        )
        after: str | None = None
        if cursor is not None:
            position = self._cursors.decode(scope, cursor)
            if set(position) != {"after"}:
                raise bad_cursor()
            after = position["after"]
        status = filters.subscription_status
        assert status is not None
        found: list[Profile] = []
        more = True
        for _ in range(MAX_STATUS_BATCHES):
            ids, more = profile_ids_with_status(
                self._client, self._table, community_id, status, after
            )
            for profile_id in ids:
                after = profile_id
                profile = self.find(community_id, profile_id)
                if profile is not None and filters.matches(profile):
                    found.append(profile)
                if len(found) > limit:
                    break
            if len(found) > limit or not more:
                break
        if len(found) > limit:
            returned = found[:limit]
            next_cursor = self._cursors.encode(scope, {"after": returned[-1].id})
            return ProfilePage(returned, True, next_cursor)
        if more and after is not None:
            # Read budget spent under a selective filter: a short page that goes on.
            return ProfilePage(found, True, self._cursors.encode(scope, {"after": after}))
        return ProfilePage(found, False, None)


def profile_from_item(item: dict[str, Any]) -> Profile:
    return Profile(
        id=item["id"],
        community_id=item["community_id"],
        kind=item["kind"],
        name=item["name"],
        email=item.get("email"),
        account_holder_id=item.get("account_holder_id"),
        free_access=bool(item.get("free_access", False)),
        credit_balances=_credit_balances(item),
        currency=item["currency"],
        created_at=parse_time(item["created_at"]),
        stripe_customer_id=item.get("stripe_customer_id"),
        stripe_customer_account=item.get("stripe_customer_account"),
        stripe_customer_deleted=item.get("stripe_customer_deleted"),
    )
