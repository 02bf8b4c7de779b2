// Platform key pages: communities, Stripe webhook events, the test clock.
import { html, useState } from "./vendor/preact-htm.mjs";
import { api, listAll } from "./api.js";
import {
  ErrorNote,
  Field,
  Loading,
  SelectField,
  StatusBadge,
  invalidWhole,
  toWhole,
  useAction,
  useLoad,
  when,
} from "./ui.js";

function NewCommunityForm({ onCreated }) {
  const [name, setName] = useState("");
  const [currency, setCurrency] = useState("usd");
  const [fee, setFee] = useState("0");
  const [created, setCreated] = useState(null);
  const action = useAction();
  async function submit(event) {
    event.preventDefault();
    const bps = toWhole(fee);
    if (Number.isNaN(bps)) {
      action.setError(invalidWhole("application_fee_bps", "250"));
      return;
    }
    const community = await action.run("POST", "/v1/communities", {
      name,
      currency: currency.trim().toLowerCase(),
      application_fee_bps: bps ?? 0,
    });
    if (community) {
      setName(""); // a later click creates another community only if a name is typed again
      setCreated(community);
      onCreated();
    }
  }
  return html`<article aria-labelledby="new-community-title">
    <h2 id="new-community-title">New community</h2>
    <form onSubmit=${submit} aria-label="New community">
      <div class="grid">
        <${Field} label="Name" name="name" value=${name} onInput=${setName} error=${action.error} />
        <${Field} label="Currency" name="currency" value=${currency} onInput=${setCurrency}
          error=${action.error} maxlength="3" />
        <${Field} label="Application fee (basis points)" name="application_fee_bps" inputmode="numeric"
          value=${fee} onInput=${setFee} error=${action.error} />
      </div>
      <${ErrorNote} error=${action.error} fields=${["name", "currency", "application_fee_bps"]} />
      <button type="submit" aria-busy=${action.busy}>Create community</button>
    </form>
    ${created ? html`<${NewKey} community=${created} />` : null}
  </article>`;
}

// The key a community was created with, shown once. A replay of the creation (its first answer
// was lost, the same Idempotency-Key sent again) carries no secret: say so and offer a new key.
function NewKey({ community }) {
  const [issued, setIssued] = useState(null);
  const action = useAction();
  const revoke = useAction();
  const secret = issued ? issued.secret : community.api_key && community.api_key.secret;
  if (secret) {
    return html`<div role="status">
      <p>
        ${community.name}'s API key (shown only now):
        <code data-testid="new-api-key">${secret}</code>
      </p>
      <${ErrorNote} error=${revoke.error} />
    </div>`;
  }
  async function issue() {
    const key = await action.run("POST", `/v1/communities/${community.id}/api-keys`, {});
    if (!key) return;
    setIssued(key);
    // Nobody ever saw the lost key: it is revoked, never left working.
    await revoke.run("DELETE", `/v1/communities/${community.id}/api-keys/${community.api_key.id}`);
  }
  return html`<div role="status">
    <p>
      ${community.name} was created by an earlier attempt whose answer was lost. Its key is shown
      only once, so it cannot be shown again: issue a new key (the lost one is revoked).
    </p>
    <button type="button" onClick=${issue} aria-busy=${action.busy}>
      Issue a new key<span class="visually-hidden"> for ${community.name}</span>
    </button>
    <${ErrorNote} error=${action.error} />
  </div>`;
}

export function CommunitiesPage() {
  const state = useLoad(() => listAll("/v1/communities"), []);
  return html`<section>
    <h1>Communities</h1>
    <${NewCommunityForm} onCreated=${state.reload} />
    <${Loading} state=${state}>
      ${(communities) => html`<div class="overflow-auto" tabindex="0"><table class="striped" aria-label="Communities">
        <thead>
          <tr>
            <th scope="col">Name</th><th scope="col">Id</th><th scope="col">Currency</th>
            <th scope="col">Stripe account</th><th scope="col">Fee (bps)</th><th scope="col">Created</th>
          </tr>
        </thead>
        <tbody>
          ${communities.map(
            (c) => html`<tr key=${c.id}>
              <td>${c.name}</td><td><code>${c.id}</code></td><td>${c.currency.toUpperCase()}</td>
              <td>${c.stripe_account_id || "—"}</td><td>${c.application_fee_bps}</td>
              <td>${when(c.created_at)}</td>
            </tr>`,
          )}
        </tbody>
      </table></div>`}
    <//>
  </section>`;
}

function ReplayButton({ event, onDone }) {
  const action = useAction();
  return html`<span>
    <button type="button" class="outline small" aria-busy=${action.busy}
      onClick=${() => action.run("POST", `/v1/webhook-events/${event.id}/replay`, {}, { onDone })}>
      Replay<span class="visually-hidden"> ${event.id}</span>
    </button>
    <${ErrorNote} error=${action.error} />
  </span>`;
}

export function WebhookEventsPage() {
  const [status, setStatus] = useState("");
  const [type, setType] = useState("");
  const [applied, setApplied] = useState({ status: "", type: "" });
  const state = useLoad(() => api("GET", "/v1/webhook-events", { query: { ...applied, limit: 50 } }), [
    applied.status,
    applied.type,
  ]);
  return html`<section>
    <h1>Webhook events</h1>
    <form class="filters" aria-label="Filter webhook events" onSubmit=${(event) => {
      event.preventDefault();
      setApplied({ status, type });
    }}>
      <div class="grid">
        <${SelectField} label="Status" name="status" value=${status} onChange=${setStatus}
          options=${[["", "Any status"], ["processed", "Processed"], ["failed", "Failed"], ["ignored", "Ignored"]]} />
        <${Field} label="Type" name="type" value=${type} onInput=${setType} error=${state.error}
          placeholder="payment_intent.succeeded" />
      </div>
      <button type="submit">Filter</button>
    </form>
    <${Loading} state=${state}>
      ${(page) => html`${page.has_more
          ? html`<p class="error-note" role="status">
              Only the newest ${page.data.length} events are shown; there are more. Filter by
              status (failed) or type to reach the others.
            </p>`
          : null}
        ${page.data.length === 0
          ? html`<p>No webhook events.</p>`
          : html`<div class="overflow-auto" tabindex="0"><table class="striped" aria-label="Webhook events">
              <thead>
                <tr>
                  <th scope="col">Received</th><th scope="col">Type</th><th scope="col">Status</th>
                  <th scope="col">Community</th><th scope="col">Error</th><th scope="col">Actions</th>
                </tr>
              </thead>
              <tbody>
                ${page.data.map(
                  (e) => html`<tr key=${e.id}>
                    <td>${when(e.received_at)}</td>
                    <td>${e.type}</td>
                    <td><${StatusBadge} status=${e.status} /></td>
                    <td>${e.community_id || "—"}</td>
                    <td>${e.error || "—"}</td>
                    <td>${e.status === "failed" ? html`<${ReplayButton} event=${e} onDone=${state.reload} />` : null}</td>
                  </tr>`,
                )}
              </tbody>
            </table></div>`}`}
    <//>
  </section>`;
}

export function TestClockPage() {
  const clock = useLoad(() => api("GET", "/v1/test-clock"), []);
  const [unit, setUnit] = useState("days");
  const [amount, setAmount] = useState("31");
  const [result, setResult] = useState(null);
  const action = useAction();
  async function submit(event) {
    event.preventDefault();
    const count = toWhole(amount);
    if (unit !== "to" && (count === null || Number.isNaN(count))) {
      action.setError(invalidWhole(unit, "31"));
      return;
    }
    const body = unit === "to" ? { to: amount.trim() } : { [unit]: count };
    const outcome = await action.run("POST", "/v1/test-clock/advance", body, { onDone: clock.reload });
    if (outcome) setResult(outcome);
  }
  return html`<section>
    <h1>Test clock</h1>
    <${Loading} state=${clock}>
      ${(now) => html`<p>The clock reads <strong data-testid="clock-now">${when(now.now)}</strong>.</p>`}
    <//>
    <form onSubmit=${submit} aria-label="Advance the test clock">
      <div class="grid">
        <${SelectField} label="Advance by" name="unit" value=${unit} onChange=${setUnit}
          options=${[["days", "Days"], ["seconds", "Seconds"], ["to", "To a time (RFC 3339)"]]} />
        <${Field} label=${unit === "to" ? "Time" : "Amount"} name=${unit} value=${amount}
          onInput=${setAmount} error=${action.error} />
      </div>
      <${ErrorNote} error=${action.error} fields=${[unit]} />
      <button type="submit" aria-busy=${action.busy}>Advance</button>
    </form>
    ${result
      ? html`<article aria-labelledby="processed-title" role="status">
          <h2 id="processed-title">What the scheduler did</h2>
          <p>Now ${when(result.now)}.</p>
          <div class="overflow-auto" tabindex="0"><table aria-label="What the scheduler did">
            <tbody>
              ${Object.entries(result.processed).map(
                ([name, count]) => html`<tr key=${name}>
                  <th scope="row">${name.replace("_", " ")}</th><td data-testid="processed-${name}">${count}</td>
                </tr>`,
              )}
            </tbody>
          </table></div>
        </article>`
      : null}
  </section>`;
}
