// Plans, payments (list, detail, refunds) and reports.
import { html, useEffect, useRef, useState } from "./vendor/preact-htm.mjs";
import { api, listAll } from "./api.js";
import {
  ErrorNote,
  Field,
  Loading,
  MoreNotShown,
  SelectField,
  StatusBadge,
  confirmAction,
  day,
  fieldError,
  invalidAmount,
  invalidWhole,
  money,
  toMinor,
  toWhole,
  useAction,
  useLoad,
  when,
} from "./ui.js";
import { STATUSES } from "./customers.js";

// A plan form's whole numbers (blank grace: left out), and the first field that does not read
// as one: a typo ("7 days") is refused under its field, never sent as null.
function planNumbers(form) {
  const retries = form.retries
    .split(",")
    .map((part) => part.trim())
    .filter(Boolean)
    .map(toWhole);
  const grace = toWhole(form.grace);
  const maxMembers = toWhole(form.max_members);
  const unreadable = Number.isNaN(grace)
    ? "failed_payment_grace_days"
    : retries.some(Number.isNaN)
      ? "retry_schedule_days"
      : Number.isNaN(maxMembers)
        ? "max_members"
        : null;
  const values = { retry_schedule_days: retries, max_members: maxMembers };
  if (grace !== null) values.failed_payment_grace_days = grace;
  return { values, unreadable };
}

function NewPlanForm({ onCreated }) {
  const [form, setForm] = useState({
    name: "",
    description: "",
    currency: null, // untouched: the community's
    month: "",
    year: "",
    activation_fee: "0",
    grace: "14",
    retries: "",
    max_members: "",
  });
  const action = useAction();
  const set = (key) => (value) => setForm({ ...form, [key]: value });
  // Prices are read with the plan currency's decimals, so that currency is always known here:
  // the community's (what the API defaults to, from the report summary) unless typed.
  const community = useLoad(() => api("GET", "/v1/reports/summary"), []);
  const shownCurrency = form.currency ?? (community.data ? community.data.currency : "");
  const currency = shownCurrency.trim().toLowerCase();
  const waiting = form.currency === null && community.loading; // for the community's currency

  async function submit(event) {
    event.preventDefault();
    if (!currency) {
      action.setError(fieldError("currency", "Check the currency.", "Enter the plan's currency, e.g. usd."));
      return;
    }
    const amounts = {
      "prices.month": toMinor(form.month, currency),
      "prices.year": toMinor(form.year, currency),
      activation_fee: toMinor(form.activation_fee, currency),
    };
    const unreadable = Object.keys(amounts).find((field) => Number.isNaN(amounts[field]));
    if (unreadable) {
      action.setError(invalidAmount(unreadable, currency));
      return;
    }
    const numbers = planNumbers(form);
    if (numbers.unreadable) {
      action.setError(invalidWhole(numbers.unreadable));
      return;
    }
    const prices = {};
    if (amounts["prices.month"] !== null) prices.month = amounts["prices.month"];
    if (amounts["prices.year"] !== null) prices.year = amounts["prices.year"];
    const body = {
      name: form.name,
      currency,
      prices,
      activation_fee: amounts.activation_fee ?? 0,
      ...numbers.values,
    };
    if (form.description.trim()) body.description = form.description;
    if (body.max_members === null) delete body.max_members;
    const created = await action.run("POST", "/v1/plans", body);
    if (created) onCreated(created);
  }

  const e = action.error;
  return html`<form onSubmit=${submit} aria-label="New plan">
    <div class="grid">
      <${Field} label="Name" name="name" value=${form.name} onInput=${set("name")} error=${e} />
      <${Field} label="Description" name="description" value=${form.description}
        onInput=${set("description")} error=${e} />
      <${Field} label="Currency" name="currency" value=${shownCurrency} onInput=${set("currency")}
        error=${e} maxlength="3" />
    </div>
    <div class="grid">
      <${Field} label="Monthly price" name="prices.month" inputmode="decimal" value=${form.month}
        onInput=${set("month")} error=${e} hint="In the currency's units, e.g. 15.00" />
      <${Field} label="Yearly price" name="prices.year" inputmode="decimal" value=${form.year}
        onInput=${set("year")} error=${e} />
      <${Field} label="Activation fee (per member)" name="activation_fee" inputmode="decimal"
        value=${form.activation_fee} onInput=${set("activation_fee")} error=${e} />
    </div>
    <div class="grid">
      <${Field} label="Grace days after a failed payment" name="failed_payment_grace_days"
        inputmode="numeric" value=${form.grace} onInput=${set("grace")} error=${e} />
      <${Field} label="Retry on days (comma-separated)" name="retry_schedule_days" value=${form.retries}
        onInput=${set("retries")} error=${e} hint="e.g. 1, 3, 7" />
      <${Field} label="Maximum members" name="max_members" inputmode="numeric" value=${form.max_members}
        onInput=${set("max_members")} error=${e} />
    </div>
    <${ErrorNote} error=${e} fields=${[
      "name", "description", "currency", "prices", "activation_fee",
      "failed_payment_grace_days", "retry_schedule_days", "max_members",
    ]} />
    <button type="submit" disabled=${waiting} aria-busy=${waiting || action.busy}>Create plan</button>
  </form>`;
}

function EditPlanForm({ plan, onDone }) {
  const [form, setForm] = useState({
    name: plan.name,
    description: plan.description || "",
    grace: String(plan.failed_payment_grace_days),
    retries: plan.retry_schedule_days.join(", "),
    max_members: plan.max_members ? String(plan.max_members) : "",
  });
  const action = useAction();
  const set = (key) => (value) => setForm({ ...form, [key]: value });
  async function submit(event) {
    event.preventDefault();
    const numbers = planNumbers(form);
    if (numbers.unreadable) {
      action.setError(invalidWhole(numbers.unreadable));
      return;
    }
    // A blank maximum is sent as null: the plan has no member limit.
    const body = { name: form.name, description: form.description || null, ...numbers.values };
    await action.run("PATCH", `/v1/plans/${plan.id}`, body, { onDone });
  }
  const e = action.error;
  return html`<form onSubmit=${submit} aria-label="Edit ${plan.name}">
    <div class="grid">
      <${Field} label="Name" name="name" value=${form.name} onInput=${set("name")} error=${e} />
      <${Field} label="Description" name="description" value=${form.description}
        onInput=${set("description")} error=${e} />
    </div>
    <div class="grid">
      <${Field} label="Grace days" name="failed_payment_grace_days" value=${form.grace}
        onInput=${set("grace")} error=${e} />
      <${Field} label="Retry on days" name="retry_schedule_days" value=${form.retries}
        onInput=${set("retries")} error=${e} />
      <${Field} label="Maximum members" name="max_members" value=${form.max_members}
        onInput=${set("max_members")} error=${e} />
    </div>
    <${ErrorNote} error=${e} fields=${[
      "name", "description", "failed_payment_grace_days", "retry_schedule_days", "max_members",
    ]} />
    <button type="submit" aria-busy=${action.busy}>Save plan</button>
  </form>`;
}

function planTerms(plan) {
  const prices = Object.entries(plan.prices)
    .map(([cycle, amount]) => `${money(amount, plan.currency)} / ${cycle}`)
    .join(", ");
  const retries = plan.retry_schedule_days.length
    ? `retries on days ${plan.retry_schedule_days.join(", ")}`
    : "no retries";
  return [
    prices,
    `activation fee ${money(plan.activation_fee, plan.currency)} per member`,
    `grace ${plan.failed_payment_grace_days} days`,
    retries,
    plan.max_members ? `up to ${plan.max_members} members` : null,
  ]
    .filter(Boolean)
    .join(" · ");
}

function PlanRow({ plan, onChanged }) {
  const [editing, setEditing] = useState(false);
  const action = useAction();
  async function archive() {
    if (!(await confirmAction(`Archive ${plan.name}? It takes no new subscriptions.`, "Archive"))) return;
    await action.run("POST", `/v1/plans/${plan.id}/archive`, {}, { onDone: onChanged });
  }
  return html`<article>
    <header class="row spread">
      <span><strong>${plan.name}</strong> <${StatusBadge} status=${plan.status} /></span>
      <span class="row">
        <button type="button" class="outline small" aria-expanded=${editing}
          onClick=${() => setEditing(!editing)}>
          ${editing ? "Close" : "Edit"}<span class="visually-hidden"> ${plan.name}</span>
        </button>
        ${plan.status === "active"
          ? html`<button type="button" class="outline secondary small" onClick=${archive}>
              Archive<span class="visually-hidden"> ${plan.name}</span>
            </button>`
          : null}
      </span>
    </header>
    <p>${planTerms(plan)}</p>
    ${plan.description ? html`<p><small>${plan.description}</small></p>` : null}
    <${ErrorNote} error=${action.error} />
    ${editing
      ? html`<${EditPlanForm} plan=${plan} onDone=${() => {
          setEditing(false);
          onChanged();
        }} />`
      : null}
  </article>`;
}

export function PlansPage() {
  const [status, setStatus] = useState("active");
  const [creating, setCreating] = useState(false);
  const state = useLoad(() => listAll("/v1/plans", { status }), [status]);
  return html`<section>
    <h1>Plans</h1>
    <div class="narrow-fields">
      <${SelectField} label="Show" name="status" value=${status} onChange=${setStatus}
        options=${[["active", "Active plans"], ["archived", "Archived plans"], ["", "All plans"]]} />
    </div>
    ${creating
      ? html`<article aria-labelledby="new-plan-title">
          <h2 id="new-plan-title">New plan</h2>
          <${NewPlanForm} onCreated=${() => {
            setCreating(false);
            state.reload();
          }} />
        </article>`
      : html`<button type="button" onClick=${() => setCreating(true)}>New plan</button>`}
    <${Loading} state=${state}>
      ${(plans) =>
        plans.length === 0
          ? html`<p>No plans.</p>`
          : plans.map((plan) => html`<${PlanRow} key=${plan.id} plan=${plan} onChanged=${state.reload} />`)}
    <//>
  </section>`;
}

const PAYMENT_STATUSES = ["pending", "succeeded", "failed", "refunded", "partially_refunded", "disputed"];
const PAYMENT_KINDS = ["activation", "renewal", "reactivation", "retry", "proration", "plan_change"];

export function PaymentsPage() {
  const [filters, setFilters] = useState({ status: "", kind: "", subscription_id: "", profile_id: "" });
  const [applied, setApplied] = useState(filters);
  const state = useLoad(() => listAll("/v1/payments", applied, 3), [JSON.stringify(applied)]);
  const set = (key) => (value) => setFilters({ ...filters, [key]: value });
  return html`<section>
    <h1>Payments</h1>
    <form class="filters" aria-label="Filter payments" onSubmit=${(event) => {
      event.preventDefault();
      setApplied(filters);
    }}>
      <div class="grid">
        <${SelectField} label="Status" name="status" value=${filters.status} onChange=${set("status")}
          options=${[["", "Any status"], ...PAYMENT_STATUSES.map((s) => [s, s.replace("_", " ")])]} />
        <${SelectField} label="Kind" name="kind" value=${filters.kind} onChange=${set("kind")}
          options=${[["", "Any kind"], ...PAYMENT_KINDS.map((k) => [k, k.replace("_", " ")])]} />
        <${Field} label="Subscription id" name="subscription_id" value=${filters.subscription_id}
          onInput=${set("subscription_id")} error=${state.error} />
        <${Field} label="Profile id" name="profile_id" value=${filters.profile_id}
          onInput=${set("profile_id")} error=${state.error} />
      </div>
      <button type="submit">Filter</button>
    </form>
    <${Loading} state=${state}>
      ${(payments) => html`<${MoreNotShown} items=${payments} what="payments"
          narrow="Filter by status, kind, subscription or profile to reach the others." />
        ${payments.length === 0
          ? html`<p>No payments match.</p>`
          : html`<div class="overflow-auto"><table class="striped" aria-label="Payments">
              <thead>
                <tr>
                  <th scope="col">Date</th><th scope="col">Billed to</th><th scope="col">Kind</th>
                  <th scope="col">Status</th><th scope="col">Total</th><th scope="col">Refunded</th>
                </tr>
              </thead>
              <tbody>
                ${payments.map(
                  (p) => html`<tr key=${p.id}>
                    <td><a href="#/payments/${p.id}">${when(p.created_at)}</a></td>
                    <td>${p.billed_to.name}</td>
                    <td>${p.kind}</td>
                    <td><${StatusBadge} status=${p.status} /></td>
                    <td>${money(p.total, p.currency)}</td>
                    <td>${p.amount_refunded ? money(p.amount_refunded, p.currency) : "—"}</td>
                  </tr>`,
                )}
              </tbody>
            </table></div>`}`}
    <//>
  </section>`;
}

function RefundForm({ payment, onDone }) {
  // Refunds waiting for Stripe's answer hold their amount already (API.md).
  const left = payment.amount_paid - payment.amount_refunded - (payment.amount_refund_pending || 0);
  const [amount, setAmount] = useState("");
  const [reason, setReason] = useState("");
  const action = useAction();
  if (left <= 0 || !["succeeded", "partially_refunded"].includes(payment.status)) return null;
  async function submit(event) {
    event.preventDefault();
    const minor = toMinor(amount, payment.currency);
    if (Number.isNaN(minor)) {
      action.setError(invalidAmount("amount", payment.currency));
      return;
    }
    const shown = money(minor ?? left, payment.currency);
    if (!(await confirmAction(`Refund ${shown} to ${payment.billed_to.name}?`, "Refund"))) return;
    const body = {};
    if (minor !== null) body.amount = minor;
    if (reason.trim()) body.reason = reason.trim();
    await action.run("POST", `/v1/payments/${payment.id}/refunds`, body, { onDone });
  }
  return html`<section aria-labelledby="refund-title">
    <h2 id="refund-title">Refund</h2>
    <form onSubmit=${submit} aria-label="Refund">
      <div class="grid">
        <${Field} label="Amount" name="amount" inputmode="decimal" value=${amount} onInput=${setAmount}
          error=${action.error} hint=${`Leave blank to refund all that is left (${money(left, payment.currency)}).`} />
        <${Field} label="Reason" name="reason" value=${reason} onInput=${setReason} error=${action.error} />
      </div>
      <${ErrorNote} error=${action.error} fields=${["amount", "reason"]} />
      <button type="submit" aria-busy=${action.busy}>Refund</button>
    </form>
  </section>`;
}

export function PaymentPage({ id }) {
  const state = useLoad(() => api("GET", `/v1/payments/${id}`), [id]);
  return html`<${Loading} state=${state}>
    ${(p) => html`<section>
      <hgroup>
        <h1>Payment</h1>
        <p><code>${p.id}</code> · ${when(p.created_at)}</p>
      </hgroup>
      <dl class="summary">
        <dt>Status</dt><dd><${StatusBadge} status=${p.status} /></dd>
        <dt>Kind</dt><dd>${p.kind}</dd>
        <dt>Subscription</dt><dd><a href="#/subscriptions/${p.subscription_id}">${p.subscription_id}</a></dd>
        <dt>Billed to</dt>
        <dd><a href="#/profiles/${p.billed_to.profile_id}">${p.billed_to.name}</a> (${p.billed_to.email || "—"})</dd>
        <dt>Card</dt>
        <dd>${p.payment_method ? `${p.payment_method.brand || p.payment_method.type} •••• ${p.payment_method.last4}` : "—"}</dd>
        <dt>Period</dt><dd>${p.period ? `${day(p.period.start)} → ${day(p.period.end)}` : "—"}</dd>
        ${p.failure
          ? html`<dt>Failure</dt>
              <dd class="failure">${p.failure.message} (${p.failure.decline_code || p.failure.code})</dd>`
          : null}
        <dt>Stripe</dt>
        <dd><small>${p.stripe.payment_intent_id || "no PaymentIntent"} ${p.stripe.charge_id || ""}</small></dd>
      </dl>
      <h2>Order summary</h2>
      <div class="overflow-auto" tabindex="0"><table aria-label="Order summary">
        <thead>
          <tr>
            <th scope="col">Line</th><th scope="col">Unit</th><th scope="col">Quantity</th>
            <th scope="col">Amount</th>
          </tr>
        </thead>
        <tbody>
          ${p.lines.map(
            (line, index) => html`<tr key=${index}>
              <td>${line.description}</td>
              <td>${money(line.unit_amount, p.currency)}</td>
              <td>${line.quantity}</td>
              <td>${money(line.amount, p.currency)}</td>
            </tr>`,
          )}
        </tbody>
        <tfoot>
          <tr><th scope="row" colspan="3">Subtotal</th><td>${money(p.subtotal, p.currency)}</td></tr>
          <tr><th scope="row" colspan="3">Credit applied</th><td>${money(p.credit_applied, p.currency)}</td></tr>
          <tr><th scope="row" colspan="3">Total</th><td><strong>${money(p.total, p.currency)}</strong></td></tr>
          <tr><th scope="row" colspan="3">Paid</th><td>${money(p.amount_paid, p.currency)}</td></tr>
          <tr><th scope="row" colspan="3">Refunded</th><td data-testid="refunded">${money(p.amount_refunded, p.currency)}</td></tr>
          <tr><th scope="row" colspan="3">Application fee</th><td>${money(p.application_fee_amount, p.currency)}</td></tr>
        </tfoot>
      </table></div>
      <${RefundForm} key=${p.updated_at} payment=${p} onDone=${state.reload} />
    </section>`}
  <//>`;
}

function StatusChart({ counts }) {
  const canvas = useRef(null);
  useEffect(() => {
    if (!window.Chart || !canvas.current) return undefined;
    const chart = new window.Chart(canvas.current, {
      type: "bar",
      data: {
        labels: STATUSES.map((s) => s.replace("_", " ")),
        datasets: [
          {
            label: "Subscriptions",
            data: STATUSES.map((s) => counts[s] || 0),
            backgroundColor: ["#8891a4", "#2e9e5b", "#d08c17", "#c0392b", "#5b6274"],
          },
        ],
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        plugins: { legend: { display: false } },
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
      },
    });
    return () => chart.destroy();
  }, [JSON.stringify(counts)]);
  return html`<div class="chart-box">
    <canvas ref=${canvas} role="img" aria-label="Bar chart of subscriptions by status (the table lists the same counts)"></canvas>
  </div>`;
}

export function ReportsPage() {
  const state = useLoad(() => api("GET", "/v1/reports/summary"), []);
  return html`<section>
    <h1>Reports</h1>
    <${Loading} state=${state}>
      ${(r) => html`<p data-testid="report-currency">
          Amounts and the payment count are in ${r.currency.toUpperCase()}, the community's
          currency: plans and payments in other currencies are left out of them. Subscriptions
          and members are counted whatever their currency.
        </p>
        <div class="grid cards">
          <article><header>MRR</header><p class="figure" data-testid="mrr">${money(r.mrr, r.currency)}</p></article>
          <article><header>Members with access</header><p class="figure">${r.members_with_access}</p></article>
          <article><header>Failed, outstanding</header>
            <p class="figure">${money(r.failed_payment_outstanding, r.currency)}</p></article>
        </div>
        <div class="grid">
          <section aria-labelledby="by-status-title">
            <h2 id="by-status-title">Subscriptions by status</h2>
            <${StatusChart} counts=${r.subscriptions_by_status} />
            <div class="overflow-auto" tabindex="0"><table aria-label="Subscriptions by status">
              <tbody>
                ${STATUSES.map(
                  (s) => html`<tr key=${s}><th scope="row">${s.replace("_", " ")}</th>
                    <td>${r.subscriptions_by_status[s] || 0}</td></tr>`,
                )}
              </tbody>
            </table></div>
          </section>
          <section aria-labelledby="last30-title">
            <h2 id="last30-title">Payments, last 30 days</h2>
            <div class="overflow-auto" tabindex="0"><table aria-label="Payments, last 30 days">
              <tbody>
                <tr><th scope="row">Payments</th><td>${r.payments_last_30_days.count}</td></tr>
                <tr><th scope="row">Paid</th><td>${money(r.payments_last_30_days.amount_paid, r.currency)}</td></tr>
                <tr><th scope="row">Refunded</th><td>${money(r.payments_last_30_days.amount_refunded, r.currency)}</td></tr>
                <tr><th scope="row">Application fees</th>
                  <td>${money(r.payments_last_30_days.application_fees, r.currency)}</td></tr>
              </tbody>
            </table></div>
          </section>
        </div>`}
    <//>
  </section>`;
}
