// Setup page: store the API key (and optional proxy credentials) in storage/passwords, realm
// "vtconnect", through splunkd's REST API with the user's own session, readable by admins only
// (analysts use the key through the app's vtconnect/credential endpoint); then mark the app
// configured.
require(["jquery", "splunkjs/mvc", "splunkjs/mvc/simplexml/ready!"], function ($, mvc) {
  "use strict";
  var service = mvc.createService({ owner: "nobody", app: "vtconnect" });
  var REALM = "vtconnect";

  function status(text) { $("#vtconnect-status").text(text); }

  function restrict(id, resolve, reject) {
    service.post("storage/passwords/" + id + "/acl", {
      sharing: "app", owner: "nobody", "perms.read": "admin,sc_admin", "perms.write": "admin,sc_admin"
    }, function (err) { if (err) { reject(err); } else { resolve(); } });
  }

  function store(username, secret) {
    var id = encodeURIComponent(REALM + ":" + username + ":");
    return new Promise(function (resolve, reject) {
      service.post("storage/passwords/" + id, { password: secret }, function (err) {
        if (!err) { restrict(id, resolve, reject); return; }
        service.post("storage/passwords", { name: username, realm: REALM, password: secret },
          function (err2) { if (err2) { reject(err2); } else { restrict(id, resolve, reject); } });
      });
    });
  }

  $("#vtconnect-save").on("click", function (ev) {
    ev.preventDefault();
    var key = $("#vtconnect-key").val().trim();
    var proxy = $("#vtconnect-proxy").val();
    if (!/^[0-9a-fA-F]{64}$/.test(key) && key !== "") { status("That does not look like a VirusTotal API key (64 hex digits)."); return; }
    var jobs = [];
    if (key) { jobs.push(store("api_key", key)); }
    if (proxy) { jobs.push(store("proxy", proxy)); }
    status("Saving...");
    Promise.all(jobs).then(function () {
      service.post("apps/local/vtconnect", { configured: true }, function () {
        $("#vtconnect-key").val(""); $("#vtconnect-proxy").val("");
        status("Saved.");
      });
    }).catch(function (err) {
      status("Could not save: " + (err && err.status ? "HTTP " + err.status : "see the browser console"));
    });
  });
});
