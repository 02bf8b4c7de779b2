"""The public pay-now page (issue 15): `GET /pay/{token}` and the JSON calls it makes.

No API key: the token in the path is the credential (services/payment_links.py). The page is
rendered on the server (every value HTML-escaped) and served with the console's strict CSP:
scripts only from 'self' and the stage's Stripe.js origin, frames only Stripe's, nothing
inline. Its own files (pay.js, pay.css, Pico) come from the package under /pay-assets/.
Every request with a token counts against that token's per-minute allowance (429).

JSON calls (under the page's own path, so relative to wherever the API is mounted):
- `POST /pay/{token}/setup-intent` -> `{client_secret, stripe_account}` (Stripe Elements)
- `POST /pay/{token}/pay` `{payment_method_id}` -> `{status: paid|requires_action|processing,
  client_secret?}`; 402 declined, 409 not payable (paid, cancelled, expired, in progress)
- `POST /pay/{token}/confirm` `{payment_intent_id}` -> `{status}` after handleCardAction
- `POST /pay/{token}/new-link` -> `{sent_to}` (expired links: a fresh link to the owner's
  address on file)
"""

from __future__ import annotations

import html
import json
import os
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from chalice import Blueprint, Response
from pydantic import Field

from chalicelib.api.console import (
    CONSOLE_DIR,
    CONTENT_TYPES,
    LOCAL_PUBLISHABLE_KEY,
    content_security_policy,
    stripe_js_url,
)
from chalicelib.api.models import RequestModel, ResponseModel
from chalicelib.api.routing import (
    Auth,
    RequestContext,
    log_unhandled_error,
    request_id_of,
    retry_after,
    route,
    transient_aws_error,
)
from chalicelib.bootstrap import container
from chalicelib.config import LOCAL_STAGES
from chalicelib.domain.currencies import currency
from chalicelib.domain.errors import DomainError, NotFound, RateLimited, Unavailable
from chalicelib.observability import correlation, flush_metrics, logger

if TYPE_CHECKING:
    from chalicelib.services.pay_now import PayNow, PayPage

blueprint = Blueprint(__name__)
TAG = "pay page"
PAY_DIR = Path(__file__).resolve().parent.parent / "pay"
# name -> file: the page's own files and the console's vendored Pico (one copy in the package).
ASSETS = {
    "pay.js": PAY_DIR / "pay.js",
    "pay.css": PAY_DIR / "pay.css",
    "pico.min.css": CONSOLE_DIR / "vendor" / "pico.min.css",
}


def _service(ctx: RequestContext) -> PayNow:
    return ctx.container.pay_now


# --- JSON calls ---------------------------------------------------------------------------------
class SetupIntentOut(ResponseModel):
    client_secret: str
    stripe_account: str | None


class PayBody(RequestModel):
    payment_method_id: str = Field(min_length=1, max_length=255)


class ConfirmBody(RequestModel):
    payment_intent_id: str = Field(min_length=1, max_length=255)


class PayOut(ResponseModel):
    status: Literal["paid", "requires_action", "processing"]
    client_secret: str | None = None


class NewLinkBody(RequestModel):
    """Nothing: the new link goes to the owner's address on file, never to one given here."""


class SetupIntentBody(RequestModel):
    """Nothing: the SetupIntent is for the link's owner."""


class NewLinkOut(ResponseModel):
    sent_to: str


@route(
    blueprint,
    "/pay/{token}/setup-intent",
    "POST",
    auth=Auth.NONE,
    body=SetupIntentBody,
    response=SetupIntentOut,
    error_statuses=(404, 409, 429, 503),
    summary="Pay page: a SetupIntent for the owner's new card",
    tag=TAG,
)
def pay_setup_intent(ctx: RequestContext, token: str, body: SetupIntentBody) -> SetupIntentOut:
    secret, account = _service(ctx).setup_intent(token)
    return SetupIntentOut(client_secret=secret, stripe_account=account)


@route(
    blueprint,
    "/pay/{token}/pay",
    "POST",
    auth=Auth.NONE,
    body=PayBody,
    response=PayOut,
    error_statuses=(400, 402, 404, 409, 429, 503),
    summary="Pay page: charge the outstanding amount with the card just set up",
    tag=TAG,
)
def pay_outstanding(ctx: RequestContext, token: str, body: PayBody) -> PayOut:
    result = _service(ctx).pay(token, body.payment_method_id)
    return PayOut(status=result.status, client_secret=result.client_secret)


@route(
    blueprint,
    "/pay/{token}/confirm",
    "POST",
    auth=Auth.NONE,
    body=ConfirmBody,
    response=PayOut,
    error_statuses=(400, 402, 404, 409, 429, 503),
    summary="Pay page: finish a payment after the card's authentication",
    tag=TAG,
)
def pay_confirm(ctx: RequestContext, token: str, body: ConfirmBody) -> PayOut:
    result = _service(ctx).confirm(token, body.payment_intent_id)
    return PayOut(status=result.status)


@route(
    blueprint,
    "/pay/{token}/new-link",
    "POST",
    auth=Auth.NONE,
    body=NewLinkBody,
    response=NewLinkOut,
    error_statuses=(404, 409, 429, 503),
    summary="Pay page: email a fresh link to the owner's address on file (expired links)",
    tag=TAG,
)
def pay_new_link(ctx: RequestContext, token: str, body: NewLinkBody) -> NewLinkOut:
    return NewLinkOut(sent_to=_service(ctx).email_new_link(token))


# --- the page and its files ---------------------------------------------------------------------
def _headers(content_type: str) -> dict[str, str | list[str]]:
    return {
        "Content-Type": content_type,
        "Content-Security-Policy": content_security_policy(),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",  # the token is in the URL: never pass it on
        "Cache-Control": "no-store",
        "X-Frame-Options": "DENY",
    }


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


_read_once = cache(_read)


@blueprint.route("/pay-assets/{name}", methods=["GET"])
def pay_asset(name: str) -> Response:
    path = ASSETS.get(name)
    if path is None:
        return Response(
            body=json.dumps(
                {"error": {"type": "not_found", "message": "Not found", "details": []}}
            ),
            status_code=404,
            headers={"Content-Type": "application/json"},
        )
    local = os.environ.get("BILLING_STAGE", "local") in LOCAL_STAGES
    body = _read(path) if local else _read_once(path)
    return Response(body=body, status_code=200, headers=_headers(CONTENT_TYPES[path.suffix]))


@blueprint.route("/pay/{token}", methods=["GET"])
def pay_page(token: str) -> Response:
    """The page, or one in its own look for every refusal; a 5xx is logged like the API's."""
    with correlation(request_id=request_id_of(blueprint.current_request)):
        try:
            return _pay_page(token)
        except Exception as error:
            if not transient_aws_error(error):
                log_unhandled_error("GET /pay/{token}")
                return _html(500, _shell("Try again", _message("Please try again", _BUSY)))
            logger.warning("dependency_unavailable", extra={"reason": type(error).__name__})
            return _html(503, _shell("Try again", _message("Please try again", _BUSY)))
        finally:
            flush_metrics()


def _pay_page(token: str) -> Response:
    try:
        page = container().pay_now.page(token)
    except RateLimited as error:
        answer = _html(429, _shell("Too many requests", _message("Too many requests", _WAIT)))
        answer.headers["Retry-After"] = retry_after(error)
        return answer
    except NotFound:
        return _html(404, _shell("Link not valid", _message("This link is not valid", _INVALID)))
    except Unavailable:
        return _html(503, _shell("Try again", _message("Please try again", _BUSY)))
    except DomainError as error:
        return _html(409, _shell("Payment", _message("Payment unavailable", error.message)))
    return _html(200, render_page(page))


def _html(status: int, body: str) -> Response:
    return Response(body=body, status_code=status, headers=_headers(CONTENT_TYPES[".html"]))


_WAIT = "This link was used too often in the last minute. Wait a minute, then reload the page."
_BUSY = "We could not load this page just now. Reload it in a few seconds."
_INVALID = "Check that you opened the whole link from the email, or ask the club for a new one."


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _money(amount: int, code: str) -> str:
    return currency(code).format(amount, thousands=True)


def _date(when: datetime) -> str:
    return when.strftime("%d %B %Y, %H:%M UTC")


def _publishable_key() -> str:
    return os.environ.get("STRIPE_PUBLISHABLE_KEY") or (
        LOCAL_PUBLISHABLE_KEY if os.environ.get("STRIPE_API_BASE") else ""
    )


def _shell(title: str, content: str, state: str = "invalid", scripts: str = "") -> str:
    return f"""<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <meta name="robots" content="noindex">
    <title>{_esc(title)}</title>
    <link rel="icon" href="data:,">
    <link rel="stylesheet" href="../pay-assets/pico.min.css">
    <link rel="stylesheet" href="../pay-assets/pay.css">
{scripts}  </head>
  <body>
    <main class="container pay" data-state="{_esc(state)}">
{content}
    </main>
  </body>
</html>
"""


def _message(heading: str, text: str) -> str:
    return f"""      <article class="pay-card">
        <h1>{_esc(heading)}</h1>
        <p>{_esc(text)}</p>
      </article>"""


def _summary(page: PayPage) -> str:
    summary = page.summary or {}
    code = str(summary.get("currency", "usd"))
    rows = []
    for line in summary.get("lines", []):
        label = _esc(line.get("description", ""))  # says the quantity itself ("2 members")
        rows.append(
            f'<tr><td>{label}</td><td class="amount">{_esc(_money(line["amount"], code))}</td></tr>'
        )
    period = summary.get("period") or {}
    period_text = ""
    if period:
        start = _esc(str(period["start"])[:10])
        end = _esc(str(period["end"])[:10])
        period_text = f'<p class="muted period">New billing period: {start} to {end}</p>'
    total = _esc(_money(int(summary.get("total", 0)), code))
    return f"""        <table class="summary" aria-label="Order summary">
          <tbody>
            {"".join(rows)}
          </tbody>
          <tfoot>
            <tr><th scope="row">Amount due</th><td class="amount total">{total}</td></tr>
          </tfoot>
        </table>
        {period_text}"""


def _header(page: PayPage) -> str:
    members = ", ".join(page.member_names)
    return f"""      <header class="pay-header">
        <p class="community">{_esc(page.community_name)}</p>
        <p class="muted">{_esc(page.plan_name)} membership · {_esc(members)}</p>
      </header>"""


def render_page(page: PayPage) -> str:
    title = f"{page.community_name}: membership payment"
    if page.state == "paid":
        body = _message(
            "Paid", "Thank you: this amount has been paid and the membership is active."
        )
        return _shell(title, _header(page) + "\n" + body, "paid")
    if page.state == "cancelled":
        body = _message(
            "Cancelled",
            "This membership was cancelled because the payment was not made in time. "
            "Nothing can be paid with this link. Contact the club to join again.",
        )
        return _shell(title, _header(page) + "\n" + body, "cancelled")
    if page.state == "expired":
        body = """      <article class="pay-card">
        <h1>This link has expired</h1>
        <p>Payment links work for a limited time, and only the newest one works.
        We can email a new link to the address we have on file for you.</p>
        <button type="button" id="new-link">Email me a new link</button>
        <p id="new-link-note" role="status" hidden></p>
      </article>"""
        scripts = '    <script src="../pay-assets/pay.js" defer></script>\n'
        return _shell(title, _header(page) + "\n" + body, "expired", scripts)
    if page.processing:
        body = _message(
            "Payment in progress",
            "A payment with this link is being processed. Reload this page in a moment.",
        )
        return _shell(title, _header(page) + "\n" + body, "processing")
    summary = page.summary or {}
    total = _esc(_money(int(summary.get("total", 0)), str(summary.get("currency", "usd"))))
    account = _esc(page.stripe_account_id or "")
    body = f"""      <article class="pay-card">
        <h1>Pay your membership</h1>
        <p>Your last payment did not go through. Pay the amount due now to keep your
        membership; a new billing period starts today.</p>
{_summary(page)}
        <form id="pay-form" aria-label="Card payment" data-stripe-key="{_esc(_publishable_key())}"
              data-stripe-account="{account}">
          <fieldset>
            <legend>Card</legend>
            <div id="card-element" class="card-element"></div>
          </fieldset>
          <p id="pay-error" class="error-note" role="alert" hidden></p>
          <button type="submit" id="pay-button" disabled>Pay {total}</button>
        </form>
        <p class="muted fine">This link works until {_esc(_date(page.expires_at))}.
        Your card is kept on file for the next renewals.</p>
      </article>"""
    scripts = (
        f'    <script src="{_esc(stripe_js_url())}"></script>\n'
        '    <script src="../pay-assets/pay.js" defer></script>\n'
    )
    return _shell(title, _header(page) + "\n" + body, "payable", scripts)
