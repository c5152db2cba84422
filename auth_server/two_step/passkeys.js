/* Passkeys (WebAuthn) on Tessera's pages: the one script they run, allowed by its hash (CSP).
   A section marked data-passkey="create" or "get" holds a form; its button asks the server for
   the ceremony's options (data-options, a POST of the form's fields), lets the browser make or use
   a passkey, puts the answer in the form's "credential" and "challenge_id" fields and sends it.
   Without WebAuthn the section stays hidden and data-passkey-unsupported elements are shown;
   what goes wrong is shown in the section's data-passkey-status element, in the page's words
   (its data-passkey-message elements). */
(function () {
  "use strict";
  function bytes(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) { b64 += "="; }
    var raw = atob(b64), out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { out[i] = raw.charCodeAt(i); }
    return out.buffer;
  }
  function text(buffer) {
    var view = new Uint8Array(buffer), raw = "";
    for (var i = 0; i < view.length; i++) { raw += String.fromCharCode(view[i]); }
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function decoded(options) {
    options.challenge = bytes(options.challenge);
    if (options.user) { options.user.id = bytes(options.user.id); }
    ["excludeCredentials", "allowCredentials"].forEach(function (name) {
      (options[name] || []).forEach(function (c) { c.id = bytes(c.id); });
    });
    return options;
  }
  function answer(credential) {
    var r = credential.response, out = {
      id: credential.id, rawId: text(credential.rawId), type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
      response: { clientDataJSON: text(r.clientDataJSON) }
    };
    if (r.attestationObject) {
      out.response.attestationObject = text(r.attestationObject);
      out.response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      out.response.authenticatorData = text(r.authenticatorData);
      out.response.signature = text(r.signature);
      if (r.userHandle) { out.response.userHandle = text(r.userHandle); }
    }
    return JSON.stringify(out);
  }
  var supported = window.PublicKeyCredential && navigator.credentials && window.fetch;
  document.querySelectorAll("[data-passkey-unsupported]").forEach(function (note) {
    note.hidden = Boolean(supported);
  });
  if (!supported) { return; }
  document.querySelectorAll("[data-passkey]").forEach(function (section) {
    var form = section.querySelector("form"), status = section.querySelector("[data-passkey-status]");
    var button = form.querySelector("button"), ceremony = section.getAttribute("data-passkey");
    function say(name) {
      var message = section.querySelector('[data-passkey-message="' + name + '"]');
      status.textContent = message ? message.textContent : "";
      status.hidden = !message;
      button.disabled = false;
    }
    section.hidden = false;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      button.disabled = true;
      status.hidden = true;
      fetch(section.getAttribute("data-options"), {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams(new FormData(form))
      }).then(function (response) {
        if (!response.ok) { throw new Error("options"); }
        return response.json();
      }).then(function (given) {
        var publicKey = decoded(given.options);
        var made = ceremony === "create"
          ? navigator.credentials.create({ publicKey: publicKey })
          : navigator.credentials.get({ publicKey: publicKey });
        return made.then(function (credential) {
          form.elements.challenge_id.value = given.challenge_id;
          form.elements.credential.value = answer(credential);
          form.submit();
        }, function (error) {
          say(error && error.name === "NotAllowedError" ? "cancelled" : "failed");
        });
      }).catch(function () { say("failed"); });
    });
  });
}());
