// The portal's only script: WebAuthn on /my/security-keys and /signin/webauthn (their CSP allows
// script-src 'self'; every other page has no script at all). It reads the server's options from the form's
// data-options (JSON, base64url fields), asks the browser (navigator.credentials), and posts the answer as
// JSON in the form's hidden "credential" field; the server verifies it (py_webauthn). Without this script
// the pages say so, and sign-in with the TOTP code works as always.
(function () {
  "use strict";
  var form = document.getElementById("webauthn-form");
  var button = document.getElementById("webauthn-start");
  var status = document.getElementById("webauthn-status");
  if (!form || !button || !status) { return; }
  if (!window.PublicKeyCredential || !navigator.credentials) {
    status.textContent = "This browser cannot use security keys; use a code from your authenticator app.";
    return;
  }
  function toBytes(text) {
    var s = text.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) { s += "="; }
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out.buffer;
  }
  function toText(buffer) {
    var bytes = new Uint8Array(buffer), bin = "";
    for (var i = 0; i < bytes.length; i++) { bin += String.fromCharCode(bytes[i]); }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function ids(list) {
    (list || []).forEach(function (c) { c.id = toBytes(c.id); });
  }
  button.hidden = false;
  status.textContent = "";
  button.addEventListener("click", function () {
    var options = JSON.parse(form.getAttribute("data-options"));
    options.challenge = toBytes(options.challenge);
    var creating = form.getAttribute("data-mode") === "create";
    if (creating) {
      var name = form.elements.name;
      if (name && !name.reportValidity()) { return; }
      options.user.id = toBytes(options.user.id);
      ids(options.excludeCredentials);
    } else {
      ids(options.allowCredentials);
    }
    status.textContent = "Touch or confirm your security key.";
    var ask = creating ? navigator.credentials.create({publicKey: options})
                       : navigator.credentials.get({publicKey: options});
    ask.then(function (cred) {
      var r = cred.response, answer = {id: cred.id, rawId: toText(cred.rawId), type: cred.type,
                                       clientExtensionResults: {}, response: {clientDataJSON: toText(r.clientDataJSON)}};
      if (creating) {
        answer.response.attestationObject = toText(r.attestationObject);
        answer.response.transports = r.getTransports ? r.getTransports() : [];
      } else {
        answer.response.authenticatorData = toText(r.authenticatorData);
        answer.response.signature = toText(r.signature);
        answer.response.userHandle = r.userHandle ? toText(r.userHandle) : null;
      }
      form.elements.credential.value = JSON.stringify(answer);
      form.submit();
    }).catch(function (err) {
      status.textContent = "The security key did not answer (" + err.name + "). Try again, or use your authenticator app.";
    });
  });
})();
