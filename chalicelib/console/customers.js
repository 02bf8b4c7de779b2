// Customers (search, status filter, free access) and one profile's page.
import { html, useState } from "./vendor/preact-htm.mjs";
import { api, listAll } from "./api.js";
import {
  CardForm,
  ErrorNote,
  Field,
  Loading,
  MoreNotShown,
  SelectField,
  StatusBadge,
  cardLabel,
  confirmAction,
  day,
  money,
  useAction,
  useLoad,
} from "./ui.js";

export const STATUSES = ["inactive", "active", "expiring", "failed_payment", "cancelled"];

function FreeAccessSwitch({ profile, onChanged }) {
  // Shown at once; put back if the API refuses.
  const [on, setOn] = useState(profile.free_access);
  const action = useAction();
  async function toggle(event) {
    const wanted = event.currentTarget.checked;
    setOn(wanted);
    const saved = await action.run(
      "PATCH",
      `/v1/profiles/${profile.id}`,
      { free_access: wanted },
      { onDone: onChanged },
    );
    if (!saved) setOn(!wanted);
  }
  return html`<span class="switch" aria-busy=${action.busy ? "true" : "false"}>
    <input
      type="checkbox"
      role="switch"
      id="free-${profile.id}"
      checked=${on}
      disabled=${action.busy}
      onChange=${toggle}
    />
    <label for="free-${profile.id}" class="inline-label">
      <span class="visually-hidden">Free access for ${profile.name}</span>
      <span aria-hidden="true">${on ? "on" : "off"}</span>
    </label>
    <${ErrorNote} error=${action.error} />
  </span>`;
}

function NewCustomerForm({ onCreated }) {
  const [name, setName] = useState("");
  const [email, setEmail] = useState("");
  const action = useAction();
  async function submit(event) {
    event.preventDefault();
    const created = await action.run("POST", "/v1/profiles", {
      kind: "customer",
      name,
      email,
    });
    if (created) {
      setName("");
      setEmail("");
      onCreated(created);
    }
  }
  return html`<details>
    <summary role="button" class="outline">New customer</summary>
    <form onSubmit=${submit} aria-label="New customer">
      <div class="grid">
        <${Field} label="Name" name="name" value=${name} onInput=${setName} error=${action.error} />
        <${Field}
          label="Email"
          name="email"
          type="email"
          value=${email}
          onInput=${setEmail}
          error=${action.error}
        />
      </div>
      <${ErrorNote} error=${action.error} fields=${["name", "email"]} />
      <button type="submit" aria-busy=${action.busy}>Create customer</button>
    </form>
  </details>`;
}

// A profile that owns and belongs to one subscription lists it twice (two roles): show it once.
function uniqueSubscriptions(profile) {
  const seen = new Set();
  return profile.subscriptions.filter((s) => !seen.has(s.subscription_id) && seen.add(s.subscription_id));
}

export function CustomersPage() {
  const [search, setSearch] = useState("");
  const [applied, setApplied] = useState("");
  const [status, setStatus] = useState("");
  const [kind, setKind] = useState("");
  const state = useLoad(async () => {
    const term = applied.trim();
    const query = { subscription_status: status, kind };
    // The API looks profiles up by exact email; a name is matched here, over the listed pages.
    if (term.includes("@")) return listAll("/v1/profiles", { ...query, email: term });
    const profiles = await listAll("/v1/profiles", query);
    const needle = term.toLowerCase();
    if (!needle) return profiles;
    const found = profiles.filter(
      (p) => p.name.toLowerCase().includes(needle) || (p.email || "").toLowerCase().includes(needle),
    );
    found.truncated = profiles.truncated;
    found.read = profiles.length;
    return found;
  }, [applied, status, kind]);

  return html`<section>
    <h1>Customers</h1>
    <form
      class="filters"
      aria-label="Search profiles"
      onSubmit=${(event) => {
        event.preventDefault();
        setApplied(search);
      }}
    >
      <div class="grid">
        <${Field}
          label="Name or email"
          name="search"
          type="search"
          value=${search}
          onInput=${setSearch}
        />
        <${SelectField}
          label="Subscription status"
          name="subscription_status"
          value=${status}
          onChange=${setStatus}
          options=${[["", "Any status"], ...STATUSES.map((s) => [s, s.replace("_", " ")])]}
        />
        <${SelectField}
          label="Kind"
          name="kind"
          value=${kind}
          onChange=${setKind}
          options=${[
            ["", "All kinds"],
            ["customer", "Customers"],
            ["dependent", "Dependents"],
          ]}
        />
      </div>
      <button type="submit">Search</button>
    </form>
    <${NewCustomerForm} onCreated=${(p) => (window.location.hash = `#/profiles/${p.id}`)} />
    <${Loading} state=${state}>
      ${(profiles) => html`<${MoreNotShown} items=${profiles} what="profiles"
          narrow="A name is looked for among these only: search by exact email, or filter by status or kind, to reach the others." />
        ${profiles.length === 0
          ? html`<p>No profiles match.</p>`
          : html`<div class="overflow-auto">
              <table class="striped" aria-label="Profiles">
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Email</th>
                    <th scope="col">Kind</th>
                    <th scope="col">Subscriptions</th>
                    <th scope="col">Free access</th>
                  </tr>
                </thead>
                <tbody>
                  ${profiles.map(
                    (p) => html`<tr key=${p.id}>
                      <td><a href="#/profiles/${p.id}">${p.name}</a></td>
                      <td>${p.email || "—"}</td>
                      <td>${p.kind}</td>
                      <td>
                        ${uniqueSubscriptions(p).map(
                          (s) => html`<a href="#/subscriptions/${s.subscription_id}">
                            <${StatusBadge} status=${s.status} />
                          </a> `,
                        )}
                      </td>
                      <td><${FreeAccessSwitch} profile=${p} onChanged=${state.reload} /></td>
                    </tr>`,
                  )}
                </tbody>
              </table>
            </div>`}`}
    <//>
  </section>`;
}

function DependentForm({ holder, onCreated }) {
  const [name, setName] = useState("");
  const action = useAction();
  async function submit(event) {
    event.preventDefault();
    const created = await action.run("POST", "/v1/profiles", {
      kind: "dependent",
      name,
      account_holder_id: holder.id,
    });
    if (created) {
      setName("");
      onCreated();
    }
  }
  return html`<form onSubmit=${submit} aria-label="Add a dependent" class="inline-form">
    <${Field} label="Dependent's name" name="name" value=${name} onInput=${setName} error=${action.error} />
    <${ErrorNote} error=${action.error} fields=${["name"]} />
    <button type="submit" aria-busy=${action.busy}>Add dependent</button>
  </form>`;
}

function PaymentMethods({ profile, methods, onChanged }) {
  const [adding, setAdding] = useState(false);
  const action = useAction();
  async function remove(pm) {
    if (!(await confirmAction(`Remove the card ${cardLabel(pm)}?`, "Remove card"))) return;
    await action.run("DELETE", `/v1/profiles/${profile.id}/payment-methods/${pm.id}`, undefined, {
      onDone: onChanged,
    });
  }
  return html`<section aria-labelledby="pm-title">
    <h2 id="pm-title">Payment methods</h2>
    ${methods.length === 0
      ? html`<p>No cards yet.</p>`
      : html`<ul class="plain" aria-label="Cards">
          ${methods.map(
            (pm) => html`<li key=${pm.id}>
              ${cardLabel(pm)} <code>${pm.id}</code>
              <button class="outline secondary small" type="button" onClick=${() => remove(pm)}>
                Remove<span class="visually-hidden"> ${cardLabel(pm)}</span>
              </button>
            </li>`,
          )}
        </ul>`}
    <${ErrorNote} error=${action.error} />
    ${adding
      ? html`<${CardForm}
          profileId=${profile.id}
          onSaved=${() => {
            setAdding(false);
            onChanged();
          }}
        />`
      : html`<button type="button" class="outline" onClick=${() => setAdding(true)}>Add a card</button>`}
  </section>`;
}

function NewSubscriptionForm({ owner, dependents, methods }) {
  const plans = useLoad(() => listAll("/v1/plans", { status: "active" }), []);
  const [planId, setPlanId] = useState("");
  const [cycle, setCycle] = useState("month");
  const [cardId, setCardId] = useState("");
  const [memberIds, setMemberIds] = useState([owner.id]);
  const [waive, setWaive] = useState(false);
  const action = useAction();
  const people = [owner, ...dependents];

  async function submit(event) {
    event.preventDefault();
    const chosenPlan = planId || (plans.data && plans.data[0] ? plans.data[0].id : "");
    const chosenCard = cardId || (methods[0] ? methods[0].id : "");
    await action.run(
      "POST",
      "/v1/subscriptions",
      {
        plan_id: chosenPlan,
        owner_id: owner.id,
        member_ids: memberIds,
        billing_cycle: cycle,
        payment_method_id: chosenCard || undefined,
        waive_activation_fee: waive,
      },
      { onDone: (sub) => (window.location.hash = `#/subscriptions/${sub.id}`) },
    );
  }

  return html`<section aria-labelledby="new-sub-title">
    <h2 id="new-sub-title">New subscription</h2>
    <${Loading} state=${plans}>
      ${(planList) => html`<form onSubmit=${submit} aria-label="New subscription">
        <div class="grid">
          <${SelectField}
            label="Plan"
            name="plan_id"
            value=${planId || (planList[0] ? planList[0].id : "")}
            onChange=${setPlanId}
            error=${action.error}
            options=${planList.map((p) => [p.id, p.name])}
          />
          <${SelectField}
            label="Billing cycle"
            name="billing_cycle"
            value=${cycle}
            onChange=${setCycle}
            error=${action.error}
            options=${[
              ["month", "Monthly"],
              ["year", "Yearly"],
            ]}
          />
          <${SelectField}
            label="Card"
            name="payment_method_id"
            value=${cardId || (methods[0] ? methods[0].id : "")}
            onChange=${setCardId}
            error=${action.error}
            options=${methods.length
              ? methods.map((m) => [m.id, cardLabel(m)])
              : [["", "No card (add one first)"]]}
          />
        </div>
        <fieldset>
          <legend>Members</legend>
          ${people.map(
            (person) => html`<label key=${person.id}>
              <input
                type="checkbox"
                name="member_ids"
                checked=${memberIds.includes(person.id)}
                onChange=${(event) =>
                  setMemberIds(
                    event.currentTarget.checked
                      ? [...memberIds, person.id]
                      : memberIds.filter((id) => id !== person.id),
                  )}
              />
              ${person.name}
            </label>`,
          )}
        </fieldset>
        <label>
          <input
            type="checkbox"
            role="switch"
            name="waive_activation_fee"
            checked=${waive}
            onChange=${(event) => setWaive(event.currentTarget.checked)}
          />
          Waive the activation fee
        </label>
        <${ErrorNote}
          error=${action.error}
          fields=${["plan_id", "billing_cycle", "payment_method_id"]}
        />
        <button type="submit" aria-busy=${action.busy}>Create subscription</button>
      </form>`}
    <//>
  </section>`;
}

// Credit is kept per currency (credit_balance is only the profile's own currency's): every
// balance held is shown, so credit from a plan in another currency is never hidden.
function creditText(profile) {
  const held = Object.entries(profile.credit_balances || {}).filter(([, amount]) => amount !== 0);
  if (held.length === 0) return money(profile.credit_balance, profile.currency);
  return held.map(([currency, amount]) => money(amount, currency)).join(", ");
}

function ProfileDetails({ profile, reload }) {
  const isCustomer = profile.kind === "customer";
  const extra = useLoad(async () => {
    const [history, methods, dependents] = await Promise.all([
      api("GET", `/v1/profiles/${profile.id}/billing-history`),
      isCustomer ? listAll(`/v1/profiles/${profile.id}/payment-methods`) : Promise.resolve([]),
      isCustomer ? listAll("/v1/profiles", { kind: "dependent" }) : Promise.resolve([]),
    ]);
    return {
      history: history.data,
      methods,
      dependents: dependents.filter((d) => d.account_holder_id === profile.id),
    };
  }, [profile.id]);
  const refresh = () => {
    reload();
    extra.reload();
  };

  return html`<section>
    <hgroup>
      <h1>${profile.name}</h1>
      <p>
        ${`${profile.kind} · ${profile.email || "no email"} · credit ${creditText(profile)}`}
        ${profile.account_holder_id
          ? html` · dependent of <a href="#/profiles/${profile.account_holder_id}">the account holder</a>`
          : null}
      </p>
    </hgroup>
    <p>Free access: <${FreeAccessSwitch} profile=${profile} onChanged=${refresh} /></p>
    <section aria-labelledby="memberships-title">
      <h2 id="memberships-title">Memberships</h2>
      ${profile.subscriptions.length === 0
        ? html`<p>No subscriptions.</p>`
        : html`<div class="overflow-auto" tabindex="0"><table aria-label="Memberships">
            <thead>
              <tr><th scope="col">Subscription</th><th scope="col">Role</th><th scope="col">Status</th></tr>
            </thead>
            <tbody>
              ${uniqueSubscriptions(profile).map(
                (s) => html`<tr key=${s.subscription_id}>
                  <td><a href="#/subscriptions/${s.subscription_id}">${s.subscription_id}</a></td>
                  <td>
                    ${profile.subscriptions
                      .filter((other) => other.subscription_id === s.subscription_id)
                      .map((other) => other.role)
                      .join(" and ")}
                  </td>
                  <td><${StatusBadge} status=${s.status} /></td>
                </tr>`,
              )}
            </tbody>
          </table></div>`}
    </section>
    <${Loading} state=${extra}>
      ${({ history, methods, dependents }) => html`
        ${isCustomer
          ? html`<section aria-labelledby="dependents-title">
              <h2 id="dependents-title">Dependents</h2>
              ${dependents.length === 0
                ? html`<p>No dependents.</p>`
                : html`<ul class="plain">
                    ${dependents.map(
                      (d) => html`<li key=${d.id}><a href="#/profiles/${d.id}">${d.name}</a></li>`,
                    )}
                  </ul>`}
              <${DependentForm} holder=${profile} onCreated=${extra.reload} />
            </section>`
          : null}
        ${isCustomer
          ? html`<${PaymentMethods} profile=${profile} methods=${methods} onChanged=${extra.reload} />`
          : null}
        ${isCustomer
          ? html`<${NewSubscriptionForm}
              owner=${profile}
              dependents=${dependents}
              methods=${methods}
            />`
          : null}
        <section aria-labelledby="history-title">
          <h2 id="history-title">Billing history</h2>
          ${history.length === 0 ? html`<p>Nothing billed yet.</p>` : null}
          ${history.map(
            (entry) => html`<article key=${entry.subscription.id}>
              <header>
                <a href="#/subscriptions/${entry.subscription.id}">${entry.subscription.plan.name}</a>
                ${` (${entry.former ? `former ${entry.role}` : entry.role}) `}<${StatusBadge} status=${entry.subscription.status} />
              </header>
              ${entry.payments.length === 0
                ? html`<p>No payments.</p>`
                : html`<div class="overflow-auto" tabindex="0"><table aria-label="Payments of ${entry.subscription.id}">
                    <thead>
                      <tr>
                        <th scope="col">Date</th><th scope="col">Kind</th>
                        <th scope="col">Status</th><th scope="col">Total</th>
                      </tr>
                    </thead>
                    <tbody>
                      ${entry.payments.map(
                        (pay) => html`<tr key=${pay.id}>
                          <td><a href="#/payments/${pay.id}">${day(pay.created_at)}</a></td>
                          <td>${pay.kind}</td>
                          <td><${StatusBadge} status=${pay.status} /></td>
                          <td>${money(pay.total, pay.currency)}</td>
                        </tr>`,
                      )}
                    </tbody>
                  </table></div>`}
            </article>`,
          )}
        </section>
      `}
    <//>
  </section>`;
}

export function ProfilePage({ id }) {
  const state = useLoad(() => api("GET", `/v1/profiles/${id}`), [id]);
  return html`<${Loading} state=${state}>
    ${(profile) => html`<${ProfileDetails} profile=${profile} reload=${state.reload} />`}
  <//>`;
}
