// Shared pieces of the console: money, dates, fields with API errors, actions, confirmation.
import { html, useEffect, useRef, useState } from "./vendor/preact-htm.mjs";
import { ApiError, api, newIdempotencyKey } from "./api.js";

const ZERO_DECIMAL = new Set(
  "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split(" "),
);
const THREE_DECIMAL = new Set("bhd jod kwd omr tnd".split(" "));

export function exponent(currency) {
  const code = (currency || "usd").toLowerCase();
  if (ZERO_DECIMAL.has(code)) return 0;
  if (THREE_DECIMAL.has(code)) return 3;
  return 2;
}

export function money(amount, currency) {
  if (amount === null || amount === undefined) return "—";
  const digits = exponent(currency);
  const major = amount / 10 ** digits;
  return `${major.toFixed(digits)} ${(currency || "").toUpperCase()}`;
}

// "12.50" in the currency's major unit -> 1250 minor units; blank -> null. Anything else (a
// decimal comma, a symbol, more decimals than the currency has) -> NaN, never a guess: sent,
// NaN would go out as null, which a refund reads as "all that is left".
export function toMinor(text, currency) {
  const trimmed = String(text ?? "").trim();
  if (trimmed === "") return null;
  const digits = exponent(currency);
  // Zeros past the currency's decimals change nothing ("1500.00" JPY, "12.500" USD).
  const decimals = digits === 0 ? "(\\.0+)?" : `(\\.\\d{1,${digits}}0*)?`;
  if (!new RegExp(`^-?\\d+${decimals}$`).test(trimmed)) return NaN;
  return Math.round(Number(trimmed) * 10 ** digits);
}

// "7" -> 7; blank -> null; anything else ("7 days", "1.5") -> NaN, never sent (as null).
export function toWhole(text) {
  const trimmed = String(text ?? "").trim();
  if (trimmed === "") return null;
  return /^\d+$/.test(trimmed) ? Number(trimmed) : NaN;
}

// An error found before anything is sent, shown like the API's: under the field it names.
export function fieldError(field, summary, message) {
  return new ApiError(400, {
    error: { type: "invalid_request", message: summary, details: [{ field, message }] },
  });
}

// The error a form shows under an amount toMinor could not read.
export function invalidAmount(field, currency) {
  const digits = exponent(currency);
  const units = (currency || "usd").toUpperCase();
  const message =
    digits === 0
      ? `Enter whole ${units}, e.g. ${(12).toFixed(0)} (${units} has no decimals).`
      : `Enter ${units} with a point and at most ${digits} decimals, e.g. ${(12.5).toFixed(digits)}.`;
  return fieldError(field, "Check the amount.", message);
}

// The error a form shows under a whole number toWhole could not read.
export function invalidWhole(field, example = "7") {
  return fieldError(field, "Check the number.", `Enter a whole number, e.g. ${example}.`);
}

export function when(moment) {
  if (!moment) return "—";
  return moment.replace("T", " ").replace(/:\d\d(\.\d+)?Z$/, " UTC");
}

export function day(moment) {
  return moment ? moment.slice(0, 10) : "—";
}

export function StatusBadge({ status }) {
  return html`<span class="badge badge-${status}">${(status || "").replace(/_/g, " ")}</span>`;
}

let fieldCounter = 0;

// A labelled input whose API error (error.details[].field === name) shows right under it.
export function Field({ label, name, error, type = "text", value, onInput, hint, ...rest }) {
  const id = useRef(`f-${name.replace(/\W/g, "-")}-${(fieldCounter += 1)}`).current;
  const message = error instanceof ApiError ? error.fieldMessage(name) : null;
  const describedBy = message ? `${id}-error` : hint ? `${id}-hint` : undefined;
  return html`<div class="field">
    <label for=${id}>${label}</label>
    <input
      id=${id}
      name=${name}
      type=${type}
      value=${value}
      onInput=${(event) => onInput(event.currentTarget.value)}
      aria-invalid=${message ? "true" : undefined}
      aria-describedby=${describedBy}
      ...${rest}
    />
    ${message
      ? html`<small id="${id}-error" class="field-error">${message}</small>`
      : hint
        ? html`<small id="${id}-hint">${hint}</small>`
        : null}
  </div>`;
}

export function SelectField({ label, name, error, value, onChange, options, ...rest }) {
  const id = useRef(`s-${name.replace(/\W/g, "-")}-${(fieldCounter += 1)}`).current;
  const message = error instanceof ApiError ? error.fieldMessage(name) : null;
  return html`<div class="field">
    <label for=${id}>${label}</label>
    <select
      id=${id}
      name=${name}
      onChange=${(event) => onChange(event.currentTarget.value)}
      aria-invalid=${message ? "true" : undefined}
      aria-describedby=${message ? `${id}-error` : undefined}
      ...${rest}
    >
      ${options.map(
        ([optionValue, text]) =>
          html`<option value=${optionValue} selected=${optionValue === value}>${text}</option>`,
      )}
    </select>
    ${message ? html`<small id="${id}-error" class="field-error">${message}</small>` : null}
  </div>`;
}

// The error of a whole action: the fields it names show next to their inputs, the rest here.
export function ErrorNote({ error, fields = [] }) {
  if (!error) return null;
  if (!(error instanceof ApiError)) {
    return html`<p class="error-note" role="alert">${String(error.message || error)}</p>`;
  }
  const placed = error.details.filter((d) =>
    fields.some((f) => d.field === f || d.field.startsWith(f + ".")),
  );
  const others = error.details.filter((d) => !placed.includes(d));
  return html`<div class="error-note" role="alert">
    <strong>${error.describe()}</strong>
    ${others.length
      ? html`<ul>
          ${others.map((d) => html`<li>${d.field}: ${d.message}</li>`)}
        </ul>`
      : null}
  </div>`;
}

// One user action = one Idempotency-Key. The key is kept while the request is in flight and
// after a failure whose outcome is unknown (the same request re-sent replays, never charges
// twice); a success, a refusal or a changed request starts a new key. Clicks while busy are
// ignored.
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const running = useRef(false);
  const pending = useRef({ signature: null, key: null });

  async function run(method, path, body, { query, onDone } = {}) {
    if (running.current) return undefined;
    running.current = true;
    setBusy(true);
    setError(null);
    const signature = JSON.stringify([method, path, query || null, body ?? null]);
    if (pending.current.signature !== signature) {
      pending.current = { signature, key: newIdempotencyKey() };
    }
    try {
      const result = await api(method, path, {
        body,
        query,
        idempotencyKey: method === "POST" ? pending.current.key : undefined,
      });
      pending.current = { signature: null, key: null };
      if (onDone) await onDone(result);
      return result;
    } catch (caught) {
      // A definite refusal ends the action; an unknown outcome (no answer, 5xx, or a 409 with
      // Retry-After: the first attempt still runs) keeps the key, so sending it again cannot
      // act twice. A final 409 (an illegal transition) is stored as the key's answer: sent
      // again with that key, it would be replayed even after the conflict is gone.
      const outcomeUnknown =
        !(caught instanceof ApiError) ||
        caught.status >= 500 ||
        (caught.status === 409 && caught.retryAfter !== null);
      if (!outcomeUnknown) pending.current = { signature: null, key: null };
      setError(caught);
      return undefined;
    } finally {
      running.current = false;
      setBusy(false);
    }
  }

  return { run, busy, error, setError };
}

// Data for a page: reloads when `deps` change or reload() is called.
export function useLoad(loader, deps) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const [round, setRound] = useState(0);
  useEffect(() => {
    let live = true;
    setState((previous) => ({ ...previous, loading: true }));
    loader()
      .then((data) => live && setState({ data, error: null, loading: false }))
      .catch((error) => live && setState({ data: null, error, loading: false }));
    return () => {
      live = false;
    };
  }, [...deps, round]);
  return { ...state, reload: () => setRound((r) => r + 1) };
}

// Said under a list that listAll cut short: what is shown is not all there is.
export function MoreNotShown({ items, what, narrow }) {
  if (!items.truncated) return null;
  return html`<p class="error-note" role="status">
    Only the newest ${items.read ?? items.length} ${what} are read; there are more. ${narrow}
  </p>`;
}

export function Loading({ state, children }) {
  if (state.error) return html`<${ErrorNote} error=${state.error} />`;
  if (state.data === null) return html`<p aria-busy="true">Loading…</p>`;
  // While a reload runs, the old data stays on screen, marked busy.
  return html`<div class="loaded" aria-busy=${state.loading ? "true" : "false"}>${children(state.data)}</div>`;
}

// Every destructive action asks first, in a modal <dialog> (focus stays inside it).
let openConfirm = null;

export function confirmAction(message, confirmLabel = "Confirm") {
  return new Promise((resolve) => openConfirm({ message, confirmLabel, resolve }));
}

export function ConfirmHost() {
  const [request, setRequest] = useState(null);
  const dialog = useRef(null);
  openConfirm = setRequest;
  useEffect(() => {
    if (request && dialog.current && !dialog.current.open) dialog.current.showModal();
  }, [request]);
  function answer(yes) {
    if (dialog.current && dialog.current.open) dialog.current.close();
    const pendingRequest = request;
    setRequest(null);
    if (pendingRequest) pendingRequest.resolve(yes);
  }
  return html`<dialog
    ref=${dialog}
    aria-labelledby="confirm-title"
    onCancel=${(event) => {
      event.preventDefault();
      answer(false);
    }}
  >
    <article>
      <h2 id="confirm-title">Please confirm</h2>
      <p>${request ? request.message : ""}</p>
      <footer>
        <button class="secondary" type="button" onClick=${() => answer(false)}>Cancel</button>
        <button type="button" data-confirm onClick=${() => answer(true)}>
          ${request ? request.confirmLabel : "Confirm"}
        </button>
      </footer>
    </article>
  </dialog>`;
}

// Stripe.js for this stage (localstripe's stand-in locally), loaded once from config.json.
let stripePromise = null;

function loadStripe() {
  if (!stripePromise) {
    stripePromise = fetch("config.json", { cache: "no-store" })
      .then((response) => response.json())
      .then(
        (config) =>
          new Promise((resolve, reject) => {
            if (!config.stripe_publishable_key) {
              reject(new Error("Card entry needs STRIPE_PUBLISHABLE_KEY on this stage."));
              return;
            }
            const script = document.createElement("script");
            script.src = config.stripe_js_url;
            script.onload = () => resolve(window.Stripe(config.stripe_publishable_key));
            script.onerror = () => reject(new Error("Stripe.js did not load."));
            document.head.appendChild(script);
          }),
      );
    stripePromise.catch(() => {
      stripePromise = null;
    });
  }
  return stripePromise;
}

// Card entry through Stripe Elements: a SetupIntent for the profile, confirmed in the browser;
// the resulting payment method is then attached through the API.
export function CardForm({ profileId, onSaved }) {
  const mountPoint = useRef(null);
  const stripe = useRef(null);
  const card = useRef(null);
  const [loadError, setLoadError] = useState(null);
  const [ready, setReady] = useState(false);
  const action = useAction();
  const [stripeError, setStripeError] = useState(null);

  useEffect(() => {
    let live = true;
    loadStripe()
      .then((instance) => {
        if (!live) return;
        stripe.current = instance;
        card.current = instance.elements().create("card");
        card.current.mount(mountPoint.current);
        // localstripe's stand-in mounts bare inputs (real Elements is a titled iframe):
        // name them so every input in the console has an accessible label.
        mountPoint.current.querySelectorAll("input").forEach((input) => {
          const label = `Card ${input.placeholder.replace("_", " ")}`;
          if (!input.getAttribute("aria-label")) input.setAttribute("aria-label", label);
        });
        setReady(true);
      })
      .catch((error) => live && setLoadError(error));
    return () => {
      live = false;
      if (card.current) card.current.destroy();
    };
  }, []);

  async function save(event) {
    event.preventDefault();
    setStripeError(null);
    const path = `/v1/profiles/${profileId}/setup-intents`;
    let intent = await action.run("POST", path, {});
    // A replay (the first answer was lost and the same key sent again) carries no client_secret
    // (it is shown once): ask for a new SetupIntent, with a new key.
    if (intent && !intent.client_secret) intent = await action.run("POST", path, {});
    if (!intent) return;
    const result = await stripe.current.confirmCardSetup(intent.client_secret, {
      payment_method: { card: card.current },
    });
    if (result.error) {
      setStripeError(result.error.message || "The card was not accepted.");
      return;
    }
    const paymentMethod = result.setupIntent.payment_method;
    const pmId = typeof paymentMethod === "string" ? paymentMethod : paymentMethod.id;
    await action.run(
      "POST",
      `/v1/profiles/${profileId}/payment-methods`,
      { stripe_payment_method_id: pmId },
      { onDone: onSaved },
    );
  }

  return html`<form onSubmit=${save} aria-label="Add a card">
    <fieldset>
      <legend>Card details</legend>
      <div class="card-element" ref=${mountPoint}></div>
    </fieldset>
    ${loadError ? html`<p class="error-note" role="alert">${loadError.message}</p>` : null}
    ${stripeError ? html`<p class="error-note" role="alert">${stripeError}</p>` : null}
    <${ErrorNote} error=${action.error} />
    <button type="submit" disabled=${!ready || action.busy} aria-busy=${action.busy}>Save card</button>
  </form>`;
}

export function cardLabel(pm) {
  if (!pm) return "no card";
  const label = `${pm.brand || pm.type || "card"} •••• ${pm.last4}${pm.exp_month ? ` (${pm.exp_month}/${pm.exp_year})` : ""}`;
  // A detached card is never charged again (docs/rules/money.md): say so wherever it shows.
  return pm.detached ? `${label}: removed, cannot be charged` : label;
}
