// The console shell: sign-in, navigation and hash routes (#/customers, #/subscriptions/sub_...).
import { html, render, useEffect, useState } from "./vendor/preact-htm.mjs";
import { ApiError, KEY_REFUSED_EVENT, identifyKey, session } from "./api.js";
import { ConfirmHost, ErrorNote } from "./ui.js";
import { CustomersPage, ProfilePage } from "./customers.js";
import { SubscriptionPage } from "./subscription.js";
import { PaymentPage, PaymentsPage, PlansPage, ReportsPage } from "./billing.js";
import { CommunitiesPage, TestClockPage, WebhookEventsPage } from "./platform.js";

const COMMUNITY_PAGES = [
  ["customers", "Customers"],
  ["plans", "Plans"],
  ["payments", "Payments"],
  ["reports", "Reports"],
];
const PLATFORM_PAGES = [
  ["communities", "Communities"],
  ["webhook-events", "Webhook events"],
  ["test-clock", "Test clock"],
];

function currentRoute() {
  const parts = window.location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  return { page: parts[0] || "", id: parts[1] ? decodeURIComponent(parts[1]) : null };
}

function SignIn({ onSignedIn, notice }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState(notice ? new Error(notice) : null);
  const [busy, setBusy] = useState(false);

  async function submit(event) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const kind = await identifyKey(key.trim());
      session.save(key.trim(), kind);
      onSignedIn();
    } catch (caught) {
      setError(
        caught instanceof ApiError && caught.status === 401
          ? new Error("That key is not valid (unknown or revoked).")
          : caught,
      );
    } finally {
      setBusy(false);
    }
  }

  return html`<main class="container narrow">
    <h1>Membership billing console</h1>
    <form onSubmit=${submit}>
      <label for="api-key">API key</label>
        <input
          id="api-key"
          name="api_key"
          type="password"
          autocomplete="off"
          required
          value=${key}
          onInput=${(event) => setKey(event.currentTarget.value)}
          aria-describedby="api-key-hint"
        />
        <small id="api-key-hint">
          A community key (mbk_…) manages that community; the platform key manages communities,
          webhook events and the test clock. The key stays in this tab only.
        </small>
      <${ErrorNote} error=${error} />
      <button type="submit" aria-busy=${busy} disabled=${busy}>Sign in</button>
    </form>
  </main>`;
}

function Page({ route, kind }) {
  if (kind === "platform") {
    if (route.page === "webhook-events") return html`<${WebhookEventsPage} />`;
    if (route.page === "test-clock") return html`<${TestClockPage} />`;
    return html`<${CommunitiesPage} />`;
  }
  // A profile or subscription route without an id (#/subscriptions) is the customer list.
  const needsId = route.page === "profiles" || route.page === "subscriptions";
  switch (needsId && !route.id ? "customers" : route.page) {
    case "profiles":
      return html`<${ProfilePage} id=${route.id} />`;
    case "subscriptions":
      return html`<${SubscriptionPage} id=${route.id} />`;
    case "plans":
      return html`<${PlansPage} />`;
    case "payments":
      return route.id ? html`<${PaymentPage} id=${route.id} />` : html`<${PaymentsPage} />`;
    case "reports":
      return html`<${ReportsPage} />`;
    default:
      return html`<${CustomersPage} />`;
  }
}

function App() {
  const [route, setRoute] = useState(currentRoute());
  const [kind, setKind] = useState(session.key ? session.kind : null);
  const [notice, setNotice] = useState(null);

  useEffect(() => {
    const onRefused = () => {
      setNotice("The key stopped working (revoked or rotated): sign in again with a valid key.");
      setKind(null);
    };
    window.addEventListener(KEY_REFUSED_EVENT, onRefused);
    return () => window.removeEventListener(KEY_REFUSED_EVENT, onRefused);
  }, []);

  useEffect(() => {
    const onHash = () => {
      setRoute(currentRoute());
      window.scrollTo(0, 0);
    };
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);

  useEffect(() => {
    const page = (kind === "platform" ? PLATFORM_PAGES : COMMUNITY_PAGES).find(
      ([slug]) => slug === route.page,
    );
    document.title = `${page ? page[1] : route.page || "Console"} · Membership billing`;
  }, [route, kind]);

  if (!kind) {
    return html`<${SignIn}
      notice=${notice}
      onSignedIn=${() => {
        setNotice(null);
        setKind(session.kind);
      }}
    />`;
  }

  const pages = kind === "platform" ? PLATFORM_PAGES : COMMUNITY_PAGES;
  const active = route.page === "profiles" ? "customers" : route.page || pages[0][0];
  return html`<div>
    <a class="skip-link" href="#content">Skip to content</a>
    <header class="container">
      <nav aria-label="Main">
        <ul>
          <li><strong>Billing console</strong></li>
          <li><small class="key-kind">${kind === "platform" ? "platform" : "community"}</small></li>
        </ul>
        <ul>
          ${pages.map(
            ([slug, label]) =>
              html`<li>
                <a href="#/${slug}" aria-current=${active === slug ? "page" : undefined}>${label}</a>
              </li>`,
          )}
          <li>
            <button
              class="outline secondary"
              type="button"
              onClick=${() => {
                session.clear();
                setKind(null);
                window.location.hash = "";
              }}
            >
              Sign out
            </button>
          </li>
        </ul>
      </nav>
    </header>
    <main class="container" id="content" tabindex="-1">
      <${Page} route=${route} kind=${kind} />
    </main>
    <${ConfirmHost} />
  </div>`;
}

// Preact diffs against what it finds in the container: start from an empty one.
const root = document.getElementById("app");
root.replaceChildren();
render(html`<${App} />`, root);
