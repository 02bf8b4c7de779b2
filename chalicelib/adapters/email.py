"""Emails through SES (welcome and receipt). The SES client is created on first use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.config import Settings
from chalicelib.domain.errors import Unavailable


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    body: str


def one_line(subject: str) -> str:
    """A header is one line: the names a subject is made of (plan, community) may hold line
    breaks, which SES refuses or a reader's client takes for another header."""
    return " ".join(subject.split())


class EmailRefused(Exception):
    """SES refused the email for good. Only SES's error code is kept: its message can name the
    addresses (the sandbox's `MessageRejected` lists each recipient it refused), and a refusal
    is logged with its traceback (docs/rules/logs.md)."""

    def __init__(self, code: str) -> None:
        super().__init__(f"SES refused the email: {code}")
        self.code = code


class SesMailer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Any = None

    def _ses(self) -> Any:
        if self._client is None:
            from chalicelib.adapters.aws import aws_client

            self._client = aws_client("ses", self._settings)
        return self._client

    def send(self, email: Email) -> str:
        """Send one plain-text email; returns SES's message id. A failure a retry can fix
        (throttling, 5xx, a lost connection) raises Unavailable; others (an address SES
        refuses) raise EmailRefused, without SES's message."""
        from botocore.exceptions import ClientError

        from chalicelib.adapters.dynamodb.transactions import is_transient

        try:
            return self._send(email)
        except Exception as error:
            if is_transient(error):
                raise Unavailable("SES is unavailable; try again.") from error
            if isinstance(error, ClientError):
                raise EmailRefused(error.response.get("Error", {}).get("Code", "")) from None
            raise

    def _send(self, email: Email) -> str:
        response = self._ses().send_email(
            Source=self._settings.email_sender,
            Destination={"ToAddresses": [email.to]},
            Message={
                "Subject": {"Data": one_line(email.subject), "Charset": "UTF-8"},
                "Body": {"Text": {"Data": email.body, "Charset": "UTF-8"}},
            },
        )
        return str(response["MessageId"])
