"""The dunning mailer (services/dunning.py) on the in-memory world: a hand-written ledger, a
fake of the pay-now link issuer (the Protocol of services/dunning.py), and `publish()` that
hands each committed outbox record to the mailer as the event publisher does."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from chalicelib.domain.dunning import Reminder
from chalicelib.domain.errors import Conflict, Unavailable
from chalicelib.services.dunning import DunningMailer
from tests.support.fakes import InMemoryStore, ProfileReader
from tests.support.world import World


@dataclass(frozen=True)
class IssuedLink:
    url: str
    expires_at: datetime


class FakePaymentLinks:
    """Issues `https://pay.example/pay/tok_<n>` for a failed_payment subscription (expiring at
    the earlier of cancel_at and 7 days), Conflict otherwise; remembers the live one."""

    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self.issued: list[tuple[str, str]] = []  # (subscription id, url)

    def issue(self, community_id: str, subscription_id: str, now: datetime) -> IssuedLink:
        sub = self._store.subscriptions.get((community_id, subscription_id))
        if sub is None or sub.status != "failed_payment" or sub.cancel_at is None:
            status = sub.status if sub else "missing"
            raise Conflict(f"Only failed_payment subscriptions get a link; this one is {status}.")
        url = f"https://pay.example/pay/tok_{len(self.issued) + 1}"
        self.issued.append((subscription_id, url))
        return IssuedLink(url, min(sub.cancel_at, now + timedelta(days=7)))


@dataclass
class Claim:
    status: str
    message_id: str | None = None


@dataclass
class FakeDunningLedger:
    claims: dict[tuple[str, str, str], Claim] = field(default_factory=dict)
    reminders: dict[tuple[str, str], Reminder] = field(default_factory=dict)
    due: dict[tuple[str, str], datetime] = field(default_factory=dict)  # the due index

    def claim(self, community_id: str, subscription_id: str, key: str) -> bool:
        if (community_id, subscription_id, key) in self.claims:
            return False
        self.claims[(community_id, subscription_id, key)] = Claim("sending")
        return True

    def mark_sent(self, community_id: str, subscription_id: str, key: str, message_id: str) -> None:
        self.claims[(community_id, subscription_id, key)] = Claim("sent", message_id)

    def mark_failed(self, community_id: str, subscription_id: str, key: str, error: str) -> None:
        self.claims[(community_id, subscription_id, key)] = Claim("failed")

    def release(self, community_id: str, subscription_id: str, key: str) -> None:
        if self.claims[(community_id, subscription_id, key)].status == "sending":
            del self.claims[(community_id, subscription_id, key)]

    def schedule_reminder(self, community_id: str, reminder: Reminder) -> None:
        current = self.reminders.get((community_id, reminder.subscription_id))
        if current is not None and current.grace_ends_at >= reminder.grace_ends_at:
            return
        self.reminders[(community_id, reminder.subscription_id)] = reminder
        self.due[(community_id, reminder.subscription_id)] = reminder.due_at

    def reminder(self, community_id: str, subscription_id: str) -> Reminder | None:
        return self.reminders.get((community_id, subscription_id))

    def reminder_done(
        self, community_id: str, subscription_id: str, grace_ends_at: datetime
    ) -> None:
        current = self.reminders.get((community_id, subscription_id))
        if current is not None and current.grace_ends_at == grace_ends_at:
            self.due.pop((community_id, subscription_id), None)


class FlakyMailer:
    """Records like RecordingMailer; `down` makes the next sends raise Unavailable."""

    def __init__(self) -> None:
        self.sent: list[object] = []
        self.down = 0

    def send(self, email: object) -> str:
        if self.down:
            self.down -= 1
            raise Unavailable("SES is unavailable; try again.")
        self.sent.append(email)
        return f"msg_{len(self.sent)}"


@dataclass
class DunningWorld(World):
    def __post_init__(self) -> None:
        super().__post_init__()
        self.ledger = FakeDunningLedger()
        self.links = FakePaymentLinks(self.store)
        self.dunning = DunningMailer(
            self.store.unit_of_work,
            ProfileReader(self.directory),
            self.directory,
            self.ledger,
            self.mailer,
            self.links,
            self.clock,
        )
        self.published = 0

    def publish(self) -> list[str]:
        """Hand every outbox record committed since the last call to the mailer."""
        sent: list[str] = []
        for events, _ in self.store.outbox[self.published :]:
            sent += self.dunning.handle(events)
            self.published += 1
        return sent

    def republish_all(self) -> list[str]:
        """Every record again (a replay, a redelivered Streams batch)."""
        return [kind for events, _ in self.store.outbox for kind in self.dunning.handle(events)]


__all__ = ["DunningWorld"]
