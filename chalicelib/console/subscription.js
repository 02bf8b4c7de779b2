// One subscription: members, edits under one Save, plan changes, cancel/resume, activation or
// reactivation through the Summary preview and Confirm & Pay, its payments and audit trail.
import { html, useState } from "./vendor/preact-htm.mjs";
import { api, listAll } from "./api.js";
import {
  ErrorNote,
  Loading,
  SelectField,
  StatusBadge,
  cardLabel,
  confirmAction,
  day,
  money,
  useAction,
  useLoad,
  when,
} from "./ui.js";

function Summary({ sub, plans }) {
  const planName = (id) => (plans.find((p) => p.id === id) || { name: id }).name;
  return html`<dl class="summary">
    <dt>Status</dt>
    <dd><${StatusBadge} status=${sub.status} /></dd>
    <dt>Plan</dt>
    <dd>${sub.plan.name} · ${money(sub.plan.unit_amount, sub.plan.currency)} per ${sub.billing_cycle}</dd>
    <dt>Billed to</dt>
    <dd><a href="#/profiles/${sub.owner_id}">${sub.billed_to.name}</a> (${sub.billed_to.email || "—"})</dd>
    <dt>Card</dt>
    <dd>${cardLabel(sub.payment_method)}</dd>
    <dt>Current period</dt>
    <dd>${sub.current_period ? `${day(sub.current_period.start)} → ${day(sub.current_period.end)}` : "—"}</dd>
    ${sub.cancel_at ? html`<dt>Ends</dt><dd>${when(sub.cancel_at)}</dd>` : null}
    ${sub.next_retry_at ? html`<dt>Next retry</dt><dd>${when(sub.next_retry_at)}</dd>` : null}
    ${sub.cancelled_at
      ? html`<dt>Cancelled</dt><dd>${when(sub.cancelled_at)} (${sub.cancellation_reason})</dd>`
      : null}
    ${Object.keys(sub.pending_changes || {}).length
      ? html`<dt>At period end</dt>
          <dd>
            ${Object.entries(sub.pending_changes)
              .map(([k, v]) => (k === "plan_id" ? `plan → ${planName(v)}` : `${k.replace("_", " ")} → ${v}`))
              .join(", ")}
          </dd>`
      : null}
  </dl>`;
}

function feeText(fee) {
  if (!fee) return "—";
  if (fee.status === "waived") return "waived";
  return `${fee.status} (${fee.amount})`;
}

function Members({ sub, onChanged }) {
  const action = useAction();
  const live = sub.status === "active";
  async function remove(member, at) {
    const text =
      at === "now"
        ? `Remove ${member.name} now? Their access ends immediately.`
        : `Remove ${member.name} at the end of the period?`;
    if (!(await confirmAction(text, "Remove member"))) return;
    await action.run(
      "DELETE",
      `/v1/subscriptions/${sub.id}/members/${member.profile_id}`,
      undefined,
      { query: { at }, onDone: onChanged },
    );
  }
  async function restore(member) {
    await action.run(
      "POST",
      `/v1/subscriptions/${sub.id}/members/${member.profile_id}/restore`,
      {},
      { onDone: onChanged },
    );
  }
  return html`<section aria-labelledby="members-title">
    <h2 id="members-title">Members</h2>
    <div class="overflow-auto" tabindex="0"><table aria-label="Members">
      <thead>
        <tr>
          <th scope="col">Name</th><th scope="col">Kind</th><th scope="col">Added</th>
          <th scope="col">Activation fee</th><th scope="col">Removal</th><th scope="col">Actions</th>
        </tr>
      </thead>
      <tbody>
        ${sub.members.map(
          (m) => html`<tr key=${m.profile_id}>
            <td><a href="#/profiles/${m.profile_id}">${m.name}</a></td>
            <td>${m.kind}</td>
            <td>${day(m.added_at)}</td>
            <td>
              <span class="fee fee-${m.activation_fee ? m.activation_fee.status : "none"}">
                ${m.activation_fee && m.activation_fee.status !== "waived"
                  ? `${m.activation_fee.status} · ${money(m.activation_fee.amount, sub.plan.currency)}`
                  : feeText(m.activation_fee)}
              </span>
            </td>
            <td>${m.removal ? `at ${day(m.removal.effective_at)}` : "—"}</td>
            <td class="actions">
              ${live && !m.removal
                ? html`<button class="outline secondary small" type="button" onClick=${() => remove(m, "period_end")}>
                      Remove at period end<span class="visually-hidden"> ${m.name}</span>
                    </button>
                    <button class="outline contrast small" type="button" onClick=${() => remove(m, "now")}>
                      Remove now<span class="visually-hidden"> ${m.name}</span>
                    </button>`
                : null}
              ${live && m.removal
                ? html`<button class="outline small" type="button" onClick=${() => restore(m)}>
                    Restore<span class="visually-hidden"> ${m.name}</span>
                  </button>`
                : null}
            </td>
          </tr>`,
        )}
      </tbody>
    </table></div>
    <${ErrorNote} error=${action.error} />
  </section>`;
}

function AddMembers({ sub, candidates, onChanged }) {
  const available = candidates.filter((c) => !sub.members.some((m) => m.profile_id === c.id));
  const [profileId, setProfileId] = useState("");
  const [fee, setFee] = useState("charge");
  const [welcome, setWelcome] = useState(false);
  const [receipt, setReceipt] = useState(false);
  const [outcome, setOutcome] = useState(null);
  const action = useAction();
  const chosen = available.some((c) => c.id === profileId) ? profileId : available[0]?.id;

  async function submit(event) {
    event.preventDefault();
    const result = await action.run(
      "POST",
      `/v1/subscriptions/${sub.id}/members`,
      {
        members: [{ profile_id: chosen, activation_fee: fee }],
        send_welcome_email: welcome,
        send_receipt_email: receipt,
      },
      { onDone: onChanged },
    );
    if (result) setOutcome(result);
  }

  const report = outcome
    ? html`<p role="status">
        Added.
        ${outcome.payment
          ? html` Charged <a href="#/payments/${outcome.payment.id}">${money(outcome.payment.total, outcome.payment.currency)}</a>.`
          : " Nothing charged."}
        ${outcome.emails_sent.length ? ` Emails sent: ${outcome.emails_sent.length}.` : ""}
        ${outcome.emails_skipped.length ? ` Skipped (dependents): ${outcome.emails_skipped.length}.` : ""}
      </p>`
    : null;
  if (available.length === 0) return report;
  return html`<section aria-labelledby="add-members-title">
    <h3 id="add-members-title">Add a member</h3>
    <form onSubmit=${submit} aria-label="Add a member">
      <div class="grid">
        <${SelectField}
          label="Profile"
          name="members"
          value=${chosen}
          onChange=${setProfileId}
          error=${action.error}
          options=${available.map((c) => [c.id, `${c.name} (${c.kind})`])}
        />
        <fieldset>
          <legend>Activation fee</legend>
          <label>
            <input type="radio" name="activation_fee" value="charge" checked=${fee === "charge"}
              onChange=${() => setFee("charge")} />
            Charge
          </label>
          <label>
            <input type="radio" name="activation_fee" value="waive" checked=${fee === "waive"}
              onChange=${() => setFee("waive")} />
            Waive
          </label>
        </fieldset>
        <fieldset>
          <legend>Emails</legend>
          <label>
            <input type="checkbox" name="send_welcome_email" checked=${welcome}
              onChange=${(e) => setWelcome(e.currentTarget.checked)} />
            Send a welcome email
          </label>
          <label>
            <input type="checkbox" name="send_receipt_email" checked=${receipt}
              onChange=${(e) => setReceipt(e.currentTarget.checked)} />
            Send a receipt email
          </label>
        </fieldset>
      </div>
      <${ErrorNote} error=${action.error} fields=${["members"]} />
      <button type="submit" aria-busy=${action.busy}>Add member</button>
    </form>
    ${report}
  </section>`;
}

// Owner, card and cycle are edited together and sent as one PATCH on Save; leaving the page
// without saving discards the draft (it lives only in this component's state).
function EditSubscription({ sub, owners, methods, onChanged }) {
  const initial = {
    owner_id: sub.owner_id,
    payment_method_id: sub.payment_method ? sub.payment_method.id : "",
    billing_cycle: sub.pending_changes?.billing_cycle || sub.billing_cycle,
  };
  const [draft, setDraft] = useState(initial);
  const action = useAction();
  const changed = Object.keys(initial).filter((k) => draft[k] !== initial[k]);

  async function save(event) {
    event.preventDefault();
    const body = Object.fromEntries(changed.map((k) => [k, draft[k]]));
    await action.run("PATCH", `/v1/subscriptions/${sub.id}`, body, { onDone: onChanged });
  }

  return html`<section aria-labelledby="edit-title">
    <h2 id="edit-title">Owner, card and cycle</h2>
    <form onSubmit=${save} aria-label="Edit subscription">
      <div class="grid">
        <${SelectField}
          label="Owner"
          name="owner_id"
          value=${draft.owner_id}
          onChange=${(v) => setDraft({ ...draft, owner_id: v })}
          error=${action.error}
          options=${owners.map((o) => [o.id, `${o.name} (${o.email})`])}
        />
        <${SelectField}
          label="Card"
          name="payment_method_id"
          value=${draft.payment_method_id}
          onChange=${(v) => setDraft({ ...draft, payment_method_id: v })}
          error=${action.error}
          options=${[
            ...(draft.payment_method_id ? [] : [["", "No card"]]),
            ...methods.map((m) => [m.id, cardLabel(m)]),
          ]}
        />
        <${SelectField}
          label="Billing cycle"
          name="billing_cycle"
          value=${draft.billing_cycle}
          onChange=${(v) => setDraft({ ...draft, billing_cycle: v })}
          error=${action.error}
          options=${[
            ["month", "Monthly"],
            ["year", "Yearly"],
          ]}
        />
      </div>
      <${ErrorNote} error=${action.error} fields=${Object.keys(initial)} />
      <div class="row">
        <button type="submit" disabled=${changed.length === 0 || action.busy} aria-busy=${action.busy}>
          Save
        </button>
        <button type="button" class="secondary outline" disabled=${changed.length === 0}
          onClick=${() => setDraft(initial)}>Discard changes</button>
        ${changed.length ? html`<small>Unsaved: ${changed.join(", ").replace(/_/g, " ")}</small>` : null}
      </div>
    </form>
  </section>`;
}

function ChangePlan({ sub, plans, onChanged }) {
  const others = plans.filter((p) => p.id !== sub.plan_id && p.currency === sub.plan.currency);
  const [planId, setPlanId] = useState("");
  const [effective, setEffective] = useState("period_end");
  const action = useAction();
  if (others.length === 0) return null;
  const chosen = planId || others[0].id;
  async function submit(event) {
    event.preventDefault();
    const plan = others.find((p) => p.id === chosen);
    const text =
      effective === "now"
        ? `Change to ${plan.name} now? The difference is charged or credited at once.`
        : `Change to ${plan.name} at the end of the period?`;
    if (!(await confirmAction(text, "Change plan"))) return;
    await action.run(
      "POST",
      `/v1/subscriptions/${sub.id}/change-plan`,
      { plan_id: chosen, effective },
      { onDone: onChanged },
    );
  }
  return html`<section aria-labelledby="plan-title">
    <h2 id="plan-title">Change plan</h2>
    <form onSubmit=${submit} aria-label="Change plan">
      <div class="grid">
        <${SelectField} label="New plan" name="plan_id" value=${chosen} onChange=${setPlanId}
          error=${action.error} options=${others.map((p) => [p.id, p.name])} />
        <${SelectField} label="Effective" name="effective" value=${effective} onChange=${setEffective}
          error=${action.error} options=${[["period_end", "At period end"], ["now", "Now"]]} />
      </div>
      <${ErrorNote} error=${action.error} fields=${["plan_id", "effective"]} />
      <button type="submit" aria-busy=${action.busy}>Change plan</button>
    </form>
  </section>`;
}

function Lifecycle({ sub, onChanged }) {
  const action = useAction();
  async function cancel(at) {
    const text =
      at === "now"
        ? "Cancel now? Access ends immediately and nothing is refunded."
        : "Cancel at the end of the current period?";
    if (!(await confirmAction(text, "Cancel subscription"))) return;
    await action.run("POST", `/v1/subscriptions/${sub.id}/cancel`, { at }, { onDone: onChanged });
  }
  async function resume() {
    await action.run("POST", `/v1/subscriptions/${sub.id}/resume`, {}, { onDone: onChanged });
  }
  async function remove() {
    if (!(await confirmAction("Delete this inactive subscription?", "Delete"))) return;
    await action.run("DELETE", `/v1/subscriptions/${sub.id}`, undefined, {
      onDone: () => (window.location.hash = `#/profiles/${sub.owner_id}`),
    });
  }
  const buttons = [];
  if (sub.status === "active") {
    buttons.push(html`<button type="button" class="secondary" onClick=${() => cancel("period_end")}>Cancel at period end</button>`);
  }
  if (sub.status === "active" || sub.status === "expiring" || sub.status === "failed_payment") {
    buttons.push(html`<button type="button" class="contrast" onClick=${() => cancel("now")}>Cancel now</button>`);
  }
  if (sub.status === "expiring") {
    buttons.push(html`<button type="button" onClick=${resume}>Resume</button>`);
  }
  if (sub.status === "inactive") {
    buttons.push(html`<button type="button" class="secondary" onClick=${remove}>Delete</button>`);
  }
  if (buttons.length === 0) return null;
  return html`<section aria-labelledby="lifecycle-title">
    <h2 id="lifecycle-title">Cancel or resume</h2>
    <div class="row" aria-busy=${action.busy}>${buttons}</div>
    <${ErrorNote} error=${action.error} />
  </section>`;
}

// Activate (inactive) or reactivate (failed_payment): a Summary of what will be charged, from
// GET .../preview, then Confirm & Pay. A 402 shows the card's decline reason.
function PayFlow({ sub, methods, onChanged }) {
  const verb = sub.status === "inactive" ? "activate" : "reactivate";
  const [cardId, setCardId] = useState(sub.payment_method ? sub.payment_method.id : "");
  const [preview, setPreview] = useState(null);
  const previewAction = useAction();
  const payAction = useAction();

  async function showPreview() {
    const result = await previewAction.run("GET", `/v1/subscriptions/${sub.id}/preview`, undefined, {
      query: { action: verb },
    });
    if (result) setPreview(result);
  }
  async function pay() {
    const body = cardId && cardId !== (sub.payment_method && sub.payment_method.id)
      ? { payment_method_id: cardId }
      : {};
    const paid = await payAction.run("POST", `/v1/subscriptions/${sub.id}/${verb}`, body, {
      onDone: () => {
        setPreview(null);
        onChanged();
      },
    });
    // A decline is recorded as a failed payment: reload so the Payments table shows it.
    if (!paid) onChanged();
  }
  const title = verb === "activate" ? "Activate" : "Reactivate";
  return html`<section aria-labelledby="pay-title" class="pay-flow">
    <h2 id="pay-title">${title}</h2>
    <div class="grid">
      <${SelectField}
        label="Card to charge"
        name="payment_method_id"
        value=${cardId}
        onChange=${(v) => {
          setCardId(v);
          setPreview(null);
        }}
        error=${payAction.error}
        options=${[
          ...(cardId ? [] : [["", "No card"]]),
          ...methods.map((m) => [m.id, cardLabel(m)]),
        ]}
      />
    </div>
    <button type="button" onClick=${showPreview} aria-busy=${previewAction.busy}>
      ${title}: show summary
    </button>
    <${ErrorNote} error=${previewAction.error} />
    ${preview
      ? html`<article aria-labelledby="preview-title">
          <h3 id="preview-title">Summary</h3>
          <div class="overflow-auto" tabindex="0"><table aria-label="Summary">
            <thead>
              <tr><th scope="col">Line</th><th scope="col">Quantity</th><th scope="col">Amount</th></tr>
            </thead>
            <tbody>
              ${preview.lines.map(
                (line, index) => html`<tr key=${index}>
                  <td>${line.description}</td>
                  <td>${line.quantity}</td>
                  <td>${money(line.amount, preview.currency)}</td>
                </tr>`,
              )}
            </tbody>
            <tfoot>
              <tr><th scope="row" colspan="2">Subtotal</th><td>${money(preview.subtotal, preview.currency)}</td></tr>
              <tr><th scope="row" colspan="2">Credit applied</th><td>${money(preview.credit_applied, preview.currency)}</td></tr>
              <tr><th scope="row" colspan="2">Total</th><td><strong>${money(preview.total, preview.currency)}</strong></td></tr>
            </tfoot>
          </table></div>
          <p>Period: ${day(preview.period.start)} → ${day(preview.period.end)}</p>
          <button type="button" onClick=${pay} disabled=${payAction.busy} aria-busy=${payAction.busy}>
            Confirm & Pay
          </button>
        </article>`
      : null}
    <${ErrorNote} error=${payAction.error} fields=${["payment_method_id"]} />
  </section>`;
}

function PaymentsTable({ payments }) {
  if (payments.length === 0) return html`<p>No payments yet.</p>`;
  return html`<div class="overflow-auto" tabindex="0"><table aria-label="Payments of this subscription">
    <thead>
      <tr>
        <th scope="col">Date</th><th scope="col">Kind</th><th scope="col">Status</th>
        <th scope="col">Total</th><th scope="col">Failure</th>
      </tr>
    </thead>
    <tbody>
      ${payments.map(
        (p) => html`<tr key=${p.id}>
          <td><a href="#/payments/${p.id}">${when(p.created_at)}</a></td>
          <td>${p.kind}</td>
          <td><${StatusBadge} status=${p.status} /></td>
          <td>${money(p.total, p.currency)}</td>
          <td>${p.failure ? `${p.failure.decline_code || p.failure.code}: ${p.failure.message}` : "—"}</td>
        </tr>`,
      )}
    </tbody>
  </table></div>`;
}

function AuditTrail({ events }) {
  return html`<div class="overflow-auto" tabindex="0"><table aria-label="Audit trail">
    <thead>
      <tr>
        <th scope="col">When</th><th scope="col">Event</th><th scope="col">Status</th>
        <th scope="col">By</th>
      </tr>
    </thead>
    <tbody>
      ${events.map(
        (e, index) => html`<tr key=${index}>
          <td>${when(e.at)}</td>
          <td>${e.type}</td>
          <td>${e.from_status === e.to_status ? e.to_status : `${e.from_status || "—"} → ${e.to_status}`}</td>
          <td>${e.actor}</td>
        </tr>`,
      )}
    </tbody>
  </table></div>`;
}

export function SubscriptionPage({ id }) {
  const state = useLoad(async () => {
    const sub = await api("GET", `/v1/subscriptions/${id}`);
    const [events, payments, methods, plans, owner, dependents, customers] = await Promise.all([
      listAll(`/v1/subscriptions/${id}/events`),
      listAll("/v1/payments", { subscription_id: id }),
      listAll(`/v1/profiles/${sub.owner_id}/payment-methods`),
      listAll("/v1/plans", { status: "active" }),
      api("GET", `/v1/profiles/${sub.owner_id}`),
      listAll("/v1/profiles", { kind: "dependent" }),
      listAll("/v1/profiles", { kind: "customer" }, 2),
    ]);
    return {
      sub,
      events,
      payments,
      methods,
      plans,
      candidates: [owner, ...dependents.filter((d) => d.account_holder_id === owner.id)],
      owners: customers,
    };
  }, [id]);

  return html`<${Loading} state=${state}>
    ${({ sub, events, payments, methods, plans, candidates, owners }) => html`<section>
      <hgroup>
        <h1>Subscription</h1>
        <p><code>${sub.id}</code> · created ${day(sub.created_at)}</p>
      </hgroup>
      <${Summary} sub=${sub} plans=${plans} />
      ${sub.status === "inactive" || sub.status === "failed_payment"
        ? html`<${PayFlow} key=${sub.status} sub=${sub} methods=${methods} onChanged=${state.reload} />`
        : null}
      <${Members} sub=${sub} onChanged=${state.reload} />
      ${sub.status === "active"
        ? html`<${AddMembers} sub=${sub} candidates=${candidates} onChanged=${state.reload} />`
        : null}
      ${sub.status === "active" || sub.status === "inactive"
        ? html`<${EditSubscription} key=${sub.version} sub=${sub} owners=${owners} methods=${methods}
            onChanged=${state.reload} />`
        : null}
      ${sub.status === "active"
        ? html`<${ChangePlan} key=${sub.version} sub=${sub} plans=${plans} onChanged=${state.reload} />`
        : null}
      <${Lifecycle} sub=${sub} onChanged=${state.reload} />
      <section aria-labelledby="sub-payments-title">
        <h2 id="sub-payments-title">Payments</h2>
        <${PaymentsTable} payments=${payments} />
      </section>
      <section aria-labelledby="audit-title">
        <h2 id="audit-title">Audit trail</h2>
        <${AuditTrail} events=${events} />
      </section>
    </section>`}
  <//>`;
}
