// The pay-now page (chalicelib/api/pay_page.py renders it). No inline script: the CSP forbids it.
// Card entry through Stripe Elements and a SetupIntent; the charge runs on the server, on
// session; a card that asks for authentication goes through stripe.handleCardAction and the
// server then confirms the payment.
(function () {
  "use strict";

  // The page's JSON calls live under its own path: /pay/<token>/...
  const base = window.location.pathname.replace(/\/+$/, "");

  async function call(path, body) {
    const response = await fetch(base + path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
      cache: "no-store",
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error(
        (data.error && data.error.message) || "Something went wrong. Please try again.",
      );
      error.status = response.status;
      throw error;
    }
    return data;
  }

  function show(element, text) {
    element.textContent = text;
    element.hidden = !text;
  }

  function intentIdOf(clientSecret) {
    return clientSecret.split("_secret_")[0];
  }

  // Stripe.js's handleCardAction (manual confirmation: the server confirms afterwards).
  // localstripe's Stripe.js stand-in (local stacks) has no handleCardAction; its
  // confirmCardPayment runs the same 3D Secure step, and the server's confirm then finds the
  // intent succeeded.
  function authenticate(stripe, clientSecret) {
    if (typeof stripe.handleCardAction === "function") {
      return stripe.handleCardAction(clientSecret);
    }
    return stripe.confirmCardPayment(clientSecret);
  }

  function setUpPayForm(form) {
    const button = document.getElementById("pay-button");
    const errorNote = document.getElementById("pay-error");
    const mountPoint = document.getElementById("card-element");
    if (typeof window.Stripe !== "function") {
      show(errorNote, "The card form did not load. Reload the page to try again.");
      return;
    }
    const account = form.dataset.stripeAccount;
    const stripe = account
      ? window.Stripe(form.dataset.stripeKey, { stripeAccount: account })
      : window.Stripe(form.dataset.stripeKey);
    const card = stripe.elements().create("card");
    card.mount(mountPoint);
    // localstripe's stand-in mounts bare inputs (real Elements is a titled iframe): label them.
    mountPoint.querySelectorAll("input").forEach((input) => {
      if (!input.getAttribute("aria-label")) {
        input.setAttribute("aria-label", `Card ${input.placeholder.replace("_", " ")}`);
      }
    });
    button.disabled = false;

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      show(errorNote, "");
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
      try {
        const intent = await call("/setup-intent");
        const setup = await stripe.confirmCardSetup(intent.client_secret, {
          payment_method: { card },
        });
        if (setup.error) {
          throw new Error(setup.error.message || "The card was not accepted.");
        }
        const method = setup.setupIntent.payment_method;
        let result = await call("/pay", {
          payment_method_id: typeof method === "string" ? method : method.id,
        });
        if (result.status === "requires_action") {
          // Whatever the authentication's outcome, the server records it (a failure is a 402).
          await authenticate(stripe, result.client_secret);
          result = await call("/confirm", {
            payment_intent_id: intentIdOf(result.client_secret),
          });
        }
        window.location.reload(); // the page now shows "paid" (or "in progress")
      } catch (error) {
        if (error.status === 409) {
          window.location.reload(); // paid meanwhile (another tab?), cancelled or expired
          return;
        }
        show(errorNote, error.message || String(error));
        button.disabled = false;
        button.removeAttribute("aria-busy");
      }
    });
  }

  function setUpNewLink(button) {
    const note = document.getElementById("new-link-note");
    button.addEventListener("click", async () => {
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
      try {
        const answer = await call("/new-link");
        show(note, `We sent a new link to ${answer.sent_to}. It may take a minute to arrive.`);
        button.hidden = true;
      } catch (error) {
        show(note, error.message || String(error));
        button.disabled = false;
      }
      button.removeAttribute("aria-busy");
    });
  }

  const form = document.getElementById("pay-form");
  if (form) setUpPayForm(form);
  const newLink = document.getElementById("new-link");
  if (newLink) setUpNewLink(newLink);
})();
