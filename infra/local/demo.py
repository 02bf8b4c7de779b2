"""`make demo`: a scripted tour of membership billing on the local stack, told as a timeline.

A plan; a family subscription (a parent and two children); activation; a member added in the
middle of the period; a month passing into a renewal; the card starting to decline; the failed
renewal, a retry and the cancellation at the end of the grace period; and, beside it, a
subscription cancelled at period end that expires. Last chapter: another renewal fails, the
owner gets a pay-now link and pays through it (the JSON calls the page makes) before grace
ends. Time moves with the test clock
(`POST /v1/test-clock/advance`), which runs the same sweep and worker code as the scheduled
Lambdas. Everything goes through the HTTP API; cards are made on localstripe.

Uses the stack on BILLING_PORT / STRIPE_PORT if one answers (e.g. `make run` in another
terminal); otherwise starts one itself (logs in .local-stack/demo-logs) and stops it at the end.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalicelib.domain.currencies import currency
from infra.local.stack import REPO_ROOT, LocalStack, StackConfig

GOOD_CARD = "4242424242424242"
DECLINING_CARD = "4000000000000341"  # attaches fine, every charge is declined


class DemoError(RuntimeError):
    pass


@dataclass
class Api:
    base: str
    key: str

    def __call__(self, method: str, path: str, body: Any = None, key: str | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {key or self.key}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            raw = error.read()
            if error.code == 402:  # a declined charge: the body says what happened
                return json.loads(raw)
            raise DemoError(f"{method} {path} -> {error.code}: {raw.decode()[:500]}") from None
        return json.loads(raw) if raw else None


@dataclass
class Timeline:
    lines: list[str] = field(default_factory=list)
    echo: Callable[[str], None] = print
    # What the tour did, as the API answered it, for whoever checks its amounts (tests/e2e).
    facts: dict[str, Any] = field(default_factory=dict)

    def at(self, now: str, text: str) -> None:
        when = datetime.fromisoformat(now.replace("Z", "+00:00")).strftime("%a %d %b %Y %H:%M")
        self.add(f"{when}  {text}")

    def detail(self, text: str) -> None:
        self.add(f"{'':23}{text}")

    def add(self, line: str) -> None:
        self.lines.append(line)
        self.echo(line)


def money(amount: int, currency_code: str) -> str:
    """With the currency's own decimals (JPY 0, USD 2, KWD 3)."""
    return currency(currency_code).format(amount, thousands=True)


def stripe_card(stripe_url: str, number: str) -> str:
    """A card payment method made directly on localstripe (as a browser would via Stripe.js)."""
    form = urllib.parse.urlencode(
        {
            "type": "card",
            "card[number]": number,
            "card[exp_month]": "12",
            "card[exp_year]": "2034",
            "card[cvc]": "123",
        }
    ).encode()
    request = urllib.request.Request(
        f"{stripe_url}/v1/payment_methods",
        data=form,
        method="POST",
        headers={"Authorization": "Bearer sk_test_local"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.loads(response.read())["id"])


def describe_payment(timeline: Timeline, payment: dict[str, Any]) -> None:
    currency = payment["currency"]
    for line in payment["lines"]:
        quantity = f"{line['quantity']} x {money(line['unit_amount'], currency)}"
        timeline.detail(
            f"  {line['description']:<44} {quantity:>20} = {money(line['amount'], currency)}"
        )
    card = payment.get("payment_method") or {}
    status = payment["status"]
    verdict = f"{status.upper()}: {money(payment['total'], currency)}"
    if card:
        verdict += f" on {card.get('brand')} ending {card.get('last4')}"
    failure = payment.get("failure")
    if failure:
        reasons = [failure.get("code"), failure.get("decline_code")]
        verdict += f" ({'/'.join(str(r) for r in reasons if r)})"
    timeline.detail(f"  {verdict}   [{payment['kind']} {payment['id']}]")


def run_demo(
    api_url: str,
    stripe_url: str,
    platform_key: str,
    echo: Callable[[str], None] = print,
    on_community: Callable[[str, str], None] | None = None,
) -> Timeline:
    """`on_community(community_id, community_key)` runs right after the community exists
    (the e2e test registers its event receiver there)."""
    platform = Api(api_url, platform_key)
    t = Timeline(echo=echo)

    def clock() -> str:
        return str(platform("GET", "/v1/test-clock")["now"])

    def advance(body: dict[str, Any], why: str) -> dict[str, Any]:
        answer: dict[str, Any] = platform("POST", "/v1/test-clock/advance", body)
        done = {k: v for k, v in answer["processed"].items() if v}
        t.at(answer["now"], f"-- test clock: {why}; scheduler processed {done or 'nothing'}")
        return answer

    created = platform("POST", "/v1/communities", {"name": "Riverside Climbing Club"})
    api = Api(api_url, created["api_key"]["secret"])
    if on_community is not None:
        on_community(created["id"], created["api_key"]["secret"])
    t.at(
        clock(),
        f"Community {created['name']} ({created['id']}) opens, currency {created['currency']}",
    )

    family = api(
        "POST",
        "/v1/plans",
        {
            "name": "Family climbing",
            "prices": {"month": 4000, "year": 40000},
            "activation_fee": 1500,
            "failed_payment_grace_days": 7,
            "retry_schedule_days": [2, 5],
        },
    )
    solo = api("POST", "/v1/plans", {"name": "Solo climbing", "prices": {"month": 2500}})
    t.at(
        clock(),
        f"Plans: {family['name']} {money(family['prices']['month'], 'usd')}/member/month "
        f"+ {money(family['activation_fee'], 'usd')} activation fee, retries after 2 and 5 days, "
        f"7 days' grace; {solo['name']} {money(solo['prices']['month'], 'usd')}/month",
    )

    maria = api(
        "POST",
        "/v1/profiles",
        {"kind": "customer", "name": "Maria Lopez", "email": "maria@example.com"},
    )
    leo = api(
        "POST",
        "/v1/profiles",
        {"kind": "dependent", "name": "Leo Lopez", "account_holder_id": maria["id"]},
    )
    ana = api(
        "POST",
        "/v1/profiles",
        {"kind": "dependent", "name": "Ana Lopez", "account_holder_id": maria["id"]},
    )
    card = api(
        "POST",
        f"/v1/profiles/{maria['id']}/payment-methods",
        {"stripe_payment_method_id": stripe_card(stripe_url, GOOD_CARD)},
    )
    t.at(
        clock(),
        f"Maria Lopez signs up with her children Leo and Ana; "
        f"card {card['brand']} ending {card['last4']}",
    )

    sub = api(
        "POST",
        "/v1/subscriptions",
        {
            "plan_id": family["id"],
            "owner_id": maria["id"],
            "member_ids": [maria["id"], leo["id"]],
            "billing_cycle": "month",
            "payment_method_id": card["id"],
        },
    )
    t.at(
        clock(),
        f"Family subscription {sub['id']} created for Maria and Leo: status {sub['status']}",
    )
    sub = api("POST", f"/v1/subscriptions/{sub['id']}/activate", {})
    period = sub["current_period"]
    t.facts["family_first_period"] = period
    t.at(clock(), f"Activated: status {sub['status']}, period {period['start']} -> {period['end']}")
    describe_payment(t, last_payment(api, sub["id"]))

    sam = api(
        "POST",
        "/v1/profiles",
        {"kind": "customer", "name": "Sam Okafor", "email": "sam@example.com"},
    )
    sam_card = api(
        "POST",
        f"/v1/profiles/{sam['id']}/payment-methods",
        {"stripe_payment_method_id": stripe_card(stripe_url, GOOD_CARD)},
    )
    solo_sub = api(
        "POST",
        "/v1/subscriptions",
        {
            "plan_id": solo["id"],
            "owner_id": sam["id"],
            "member_ids": [sam["id"]],
            "billing_cycle": "month",
            "payment_method_id": sam_card["id"],
        },
    )
    solo_sub = api("POST", f"/v1/subscriptions/{solo_sub['id']}/activate", {})
    t.at(clock(), f"Sam Okafor activates Solo climbing ({solo_sub['id']})")
    describe_payment(t, last_payment(api, solo_sub["id"]))
    solo_sub = api("POST", f"/v1/subscriptions/{solo_sub['id']}/cancel", {"at": "period_end"})
    t.at(
        clock(),
        f"Sam cancels at period end: status {solo_sub['status']}, ends {solo_sub['cancel_at']}",
    )

    advance({"days": 10}, "10 days pass")
    added = api(
        "POST",
        f"/v1/subscriptions/{sub['id']}/members",
        {"members": [{"profile_id": ana["id"], "activation_fee": "charge"}]},
    )
    t.at(clock(), f"Ana joins mid-period: {len(added['subscription']['members'])} members now")
    if added.get("payment"):
        t.facts["ana_joins_payment"] = added["payment"]
        describe_payment(t, added["payment"])

    first_end = max(period["end"], solo_sub["cancel_at"])
    answer = advance({"to": first_end}, "the first period ends")
    sub = api("GET", f"/v1/subscriptions/{sub['id']}")
    t.at(
        answer["now"],
        f"Family renewed: status {sub['status']}, next period ends {sub['current_period']['end']}",
    )
    describe_payment(t, last_payment(api, sub["id"]))
    solo_sub = api("GET", f"/v1/subscriptions/{solo_sub['id']}")
    t.at(
        answer["now"],
        f"Sam's subscription: status {solo_sub['status']} ({solo_sub['cancellation_reason']})",
    )

    declining = api(
        "POST",
        f"/v1/profiles/{maria['id']}/payment-methods",
        {"stripe_payment_method_id": stripe_card(stripe_url, DECLINING_CARD)},
    )
    api("PATCH", f"/v1/subscriptions/{sub['id']}", {"payment_method_id": declining["id"]})
    t.at(clock(), f"Maria switches to a card ending {declining['last4']}; it will start declining")

    answer = advance({"to": sub["current_period"]["end"]}, "the second period ends")
    sub = api("GET", f"/v1/subscriptions/{sub['id']}")
    t.at(
        answer["now"],
        f"Renewal declined: status {sub['status']}, next retry {sub['next_retry_at']}",
    )
    describe_payment(t, last_payment(api, sub["id"]))

    answer = advance({"to": sub["next_retry_at"]}, "to the first retry")
    sub = api("GET", f"/v1/subscriptions/{sub['id']}")
    t.at(
        answer["now"], f"Retry declined: status {sub['status']}, next retry {sub['next_retry_at']}"
    )
    describe_payment(t, last_payment(api, sub["id"]))

    answer = advance({"days": 7}, "the grace period runs out")
    sub = api("GET", f"/v1/subscriptions/{sub['id']}")
    t.at(
        answer["now"],
        f"Family subscription {sub['status']} ({sub['cancellation_reason']}) "
        f"at {sub['cancelled_at']}",
    )
    access = api("GET", f"/v1/profiles/{leo['id']}/access")
    t.detail(f"  Leo has access: {access['has_access']}")

    payments = api("GET", f"/v1/payments?subscription_id={sub['id']}&limit=100")["data"]
    paid = sum(p["amount_paid"] for p in payments)
    t.add("")
    t.add(f"Family billing history: {len(payments)} payments, {money(paid, 'usd')} collected")
    for payment in sorted(payments, key=lambda p: p["created_at"]):
        amount = money(payment["total"], payment["currency"])
        t.detail(
            f"  {payment['created_at']}  {payment['kind']:<10} {payment['status']:<10} {amount:>12}"
        )

    t.add("")
    pay_through_a_link(t, api, stripe_url, solo, advance, clock)
    return t


def pay_through_a_link(
    t: Timeline,
    api: Api,
    stripe_url: str,
    plan: dict[str, Any],
    advance: Callable[[dict[str, Any], str], dict[str, Any]],
    clock: Callable[[], str],
) -> None:
    """A renewal fails; the owner pays the pay-now link before grace ends (issue 15)."""
    noor = api(
        "POST",
        "/v1/profiles",
        {"kind": "customer", "name": "Noor Haddad", "email": "noor@example.com"},
    )
    good = api(
        "POST",
        f"/v1/profiles/{noor['id']}/payment-methods",
        {"stripe_payment_method_id": stripe_card(stripe_url, GOOD_CARD)},
    )
    sub = api(
        "POST",
        "/v1/subscriptions",
        {
            "plan_id": plan["id"],
            "owner_id": noor["id"],
            "member_ids": [noor["id"]],
            "billing_cycle": "month",
            "payment_method_id": good["id"],
        },
    )
    sub = api("POST", f"/v1/subscriptions/{sub['id']}/activate", {})
    declining = api(
        "POST",
        f"/v1/profiles/{noor['id']}/payment-methods",
        {"stripe_payment_method_id": stripe_card(stripe_url, DECLINING_CARD)},
    )
    api("PATCH", f"/v1/subscriptions/{sub['id']}", {"payment_method_id": declining["id"]})
    t.at(clock(), f"Noor Haddad joins {plan['name']} ({sub['id']}); her card will start declining")

    answer = advance({"to": sub["current_period"]["end"]}, "Noor's period ends")
    sub = api("GET", f"/v1/subscriptions/{sub['id']}")
    t.at(
        answer["now"],
        f"Noor's renewal declined: status {sub['status']}, cancelled at {sub['cancel_at']} "
        "unless paid",
    )
    grace_end = sub["cancel_at"]
    link = api("POST", f"/v1/subscriptions/{sub['id']}/payment-link", {})
    t.at(clock(), f"Pay-now link for Noor (expires {link['expires_at']}):")
    t.detail(f"  {link['url']}")
    t.detail(f"  the page shows: {page_state(link['url'])}")

    # What the page does in her browser: a SetupIntent confirmed by Stripe.js, then pay.
    setup = pay_call(link["url"], "setup-intent")
    new_card = stripe_card(stripe_url, GOOD_CARD)
    confirm_setup_intent(stripe_url, setup["client_secret"], new_card)
    paid = pay_call(link["url"], "pay", {"payment_method_id": new_card})
    sub = api("GET", f"/v1/subscriptions/{sub['id']}")
    t.at(
        clock(),
        f"Noor pays through the link ({paid['status']}): status {sub['status']}, "
        f"new period {sub['current_period']['start']} -> {sub['current_period']['end']}",
    )
    describe_payment(t, last_payment(api, sub["id"]))
    t.detail(f"  the link now shows: {page_state(link['url'])}")
    t.facts["pay_link_payment"] = last_payment(api, sub["id"])

    answer = advance({"to": grace_end}, "to where the grace period would have ended")
    sub = api("GET", f"/v1/subscriptions/{sub['id']}")
    t.at(answer["now"], f"Noor's subscription: {sub['status']}")


def pay_call(link_url: str, action: str, body: Any = None) -> Any:
    """One of the pay page's JSON calls (public: the link's token is the credential)."""
    request = urllib.request.Request(
        f"{link_url}/{action}",
        data=json.dumps(body or {}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        raw = error.read().decode()[:500]
        raise DemoError(f"POST {link_url}/{action} -> {error.code}: {raw}") from None


def page_state(link_url: str) -> str:
    """What the public pay page says about its link (its `data-state`)."""
    with urllib.request.urlopen(link_url, timeout=60) as response:
        text: str = response.read().decode()
    marker = 'data-state="'
    start = text.index(marker) + len(marker)
    return text[start : text.index('"', start)]


def confirm_setup_intent(stripe_url: str, client_secret: str, payment_method_id: str) -> None:
    """Stripe.js's confirmCardSetup, done on localstripe directly."""
    setup_intent_id = client_secret.split("_secret_")[0]
    request = urllib.request.Request(
        f"{stripe_url}/v1/setup_intents/{setup_intent_id}/confirm",
        data=urllib.parse.urlencode({"payment_method": payment_method_id}).encode(),
        method="POST",
        headers={"Authorization": "Bearer sk_test_local"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        status = json.loads(response.read())["status"]
    if status != "succeeded":
        raise DemoError(f"the SetupIntent is {status}")


def last_payment(api: Api, subscription_id: str) -> dict[str, Any]:
    payments = api("GET", f"/v1/payments?subscription_id={subscription_id}&limit=100")["data"]
    if not payments:
        raise DemoError(f"no payment for {subscription_id}")
    return dict(max(payments, key=lambda p: (p["created_at"], p["id"])))


def stack_answers(config: StackConfig) -> bool:
    try:
        with urllib.request.urlopen(f"{config.api_url}/healthz", timeout=2):
            return True
    except (urllib.error.URLError, OSError):
        return False


def main() -> int:
    config = StackConfig.from_env()
    with ExitStack() as stack:
        if stack_answers(config):
            print(f"using the stack already running on {config.api_url}\n", flush=True)
        else:
            config.run_scheduler = False  # the test clock runs the jobs itself in this tour
            config.log_dir = REPO_ROOT / ".local-stack" / "demo-logs"
            print(f"starting the local stack (logs in {config.log_dir}) ...", flush=True)
            stack.enter_context(LocalStack(config))
        try:
            run_demo(
                config.api_url,
                config.stripe_url,
                os.environ.get("BILLING_PLATFORM_API_KEY", config.platform_api_key),
            )
        except DemoError as error:
            print(f"\ndemo stopped: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
