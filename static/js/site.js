// The site's own script: small additions to htmx for the call-back form. No inline code anywhere.
(function () {
  "use strict";

  // htmx comes only on pages whose script tag names it, and only after the page has loaded: a CDN that
  // hangs then never leaves the page "loading", and nothing here waits on it. Until it arrives (or if it
  // never does) the form is sent as a plain form.
  var self = document.currentScript;
  var htmxSrc = self && self.getAttribute("data-htmx-src");
  function loadHtmx() {
    var script = document.createElement("script");
    script.src = htmxSrc;
    script.integrity = self.getAttribute("data-htmx-integrity");
    script.crossOrigin = "anonymous";
    document.head.appendChild(script);
  }
  if (htmxSrc) {
    if (document.readyState === "complete") {
      loadHtmx();
    } else {
      window.addEventListener("load", loadHtmx);
    }
  }

  // Keep aria-invalid on each control in step with the message beside it.
  function syncInvalid() {
    document.querySelectorAll(".field-message").forEach(function (message) {
      var invalid = message.textContent.trim() !== "";
      document.querySelectorAll('[aria-describedby~="' + message.id + '"]').forEach(function (control) {
        if (invalid) {
          control.setAttribute("aria-invalid", "true");
        } else {
          control.removeAttribute("aria-invalid");
        }
      });
    });
  }

  // Show a message from a <template> in the form's status region, leaving every typed value alone.
  function showStatus(templateId) {
    var status = document.getElementById("form-status");
    var template = document.getElementById(templateId);
    if (!status || !template) {
      return;
    }
    status.replaceChildren(template.content.cloneNode(true));
  }

  document.addEventListener("htmx:afterSettle", syncInvalid);

  // After a send htmx shows /contact/thanks in the address bar; the title (and the history entry) follows.
  document.addEventListener("htmx:afterSettle", function () {
    var confirmation = document.querySelector("[data-page-title]");
    if (confirmation) {
      document.title = confirmation.getAttribute("data-page-title");
    }
  });
  document.addEventListener("htmx:oobAfterSwap", syncInvalid);

  // While the form itself is being sent, its text fields are read-only: the answer replaces the
  // form, so words typed meanwhile would be lost. (The values were collected before this event.)
  function setSending(form, sending) {
    form.setAttribute("aria-busy", sending ? "true" : "false");
    form.querySelectorAll("input[type=text], input[type=tel], input[type=email], textarea").forEach(function (field) {
      field.readOnly = sending;
    });
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var status = document.getElementById("form-status");
    if (status) {
      status.replaceChildren();
    }
    if (event.detail.elt.tagName === "FORM") {
      setSending(event.detail.elt, true);
    }
  });

  // No connection, or a timeout: nothing reached the server, so nothing is swapped.
  document.addEventListener("htmx:sendError", function () { showStatus("message-network"); });
  document.addEventListener("htmx:timeout", function () { showStatus("message-network"); });
  // A server error that the server did not turn into a message of its own.
  document.addEventListener("htmx:responseError", function () { showStatus("message-server"); });

  // The button is disabled while sending, which takes keyboard focus away from it. If the form is
  // still on the page afterwards (the send failed) and focus was lost, give it back to the button.
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail.elt;
    var active = document.activeElement;
    if (form.tagName === "FORM") {
      setSending(form, false);
    }
    if (form.tagName === "FORM" && form.isConnected && (!active || active === document.body)) {
      var button = form.querySelector("button[type=submit]");
      if (button) {
        button.focus();
      }
    }
  });
})();
