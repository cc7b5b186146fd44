// Configuration page: vtlookup.conf in tabs through the app's vtconnect/settings endpoint (which
// checks every value with the command's own parser and saves through splunkd with this user's
// session), and the API key, proxy credentials and hub token in storage/passwords (realm "vtconnect"),
// readable by admins only: analysts use the key through the app's vtconnect/credential endpoint.
require(["jquery", "splunkjs/mvc", "splunkjs/mvc/simplexml/ready!"], function ($, mvc) {
  "use strict";
  var service = mvc.createService({ owner: "nobody", app: "vtconnect" });
  var REALM = "vtconnect";
  var loaded = {};  // "section/key" -> value as loaded

  function status(text) { $("#vtconnect-status").text(text); }

  function call(method, body, done) {
    service.request("vtconnect/settings", method, { output_mode: "json" }, null,
      body ? JSON.stringify(body) : null, { "Content-Type": "application/json" },
      function (err, resp) {
        var doc = resp ? resp.data : (err && err.data);
        if (typeof doc === "string") { try { doc = JSON.parse(doc); } catch (e) { doc = {}; } }
        done(err, doc || {});
      });
  }

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

  function secretRow(id, label, stored) {
    return $("<tr>").append(
      $("<td>").text(label),
      $("<td>").append($("<input>", { id: id, type: "password", autocomplete: "off", size: 50 })),
      $("<td>").text(stored ? "stored" : "not set"), $("<td>"));
  }

  function render(doc) {
    var $tabs = $("#vtconnect-tabs").empty(), $panes = $("#vtconnect-panes").empty();
    loaded = {};
    (doc.tabs || []).forEach(function (tab, i) {
      var $pane = $("<div>", { "class": "vtconnect-pane" }).toggle(i === 0);
      $tabs.append($("<button>", { "class": "btn" + (i === 0 ? " btn-primary" : "") }).text(tab.name)
        .on("click", function (ev) {
          ev.preventDefault();
          $tabs.children().removeClass("btn-primary"); $(this).addClass("btn-primary");
          $panes.children().hide(); $pane.show();
        }));
      var $table = $("<table>", { "class": "table" });
      if (tab.name === "Account") { $table.append(secretRow("vtconnect-key", "VirusTotal API key", doc.api_key_stored)); }
      if (tab.name === "Proxy") { $table.append(secretRow("vtconnect-proxy", "Proxy credentials (user:password)", doc.proxy_credentials_stored)); }
      if (tab.name === "Remote hub") { $table.append(secretRow("vtconnect-hub-token", "Hub client token (vtconnect api token NAME)", doc.remote_token_stored)); }
      tab.fields.forEach(function (f) {
        var name = f.section + "/" + f.key;
        loaded[name] = f.value;
        $table.append($("<tr>").append(
          $("<td>").append($("<code>").text("[" + f.section + "] " + f.key)),
          $("<td>").append($("<input>", { type: "text", size: 50, "data-name": name }).val(f.value),
            $("<div>", { "class": "vtconnect-error", "data-error": name }).css("color", "#c00")),
          $("<td>").text(f.source === "local" ? "set here" : "default"),
          $("<td>").text(f.help + (f["default"] ? " (default: " + f["default"] + ")" : ""))));
      });
      if (!tab.fields.length && tab.name !== "Account" && tab.name !== "Proxy") {
        $pane.append($("<p>").text("Nothing to set here in this version of the app."));
      }
      $panes.append($pane.append($table));
    });
    $("#vtconnect-effective").text(JSON.stringify(doc.effective || {}, null, 2));
    showErrors(doc.errors || []);
  }

  function showErrors(errors) {
    $("[data-error]").text("");
    errors.forEach(function (e) {
      var $slot = $("[data-error='" + e.section + "/" + e.key + "']");
      if ($slot.length) { $slot.text(e.message); } else { status(e.message); }
    });
  }

  function load() {
    call("GET", null, function (err, doc) {
      if (err) { status("Could not read the settings: " + (doc.error || ("HTTP " + err.status))); return; }
      render(doc);
    });
  }

  $("#vtconnect-save").on("click", function (ev) {
    ev.preventDefault();
    var changes = {}, any = false;
    $("input[data-name]").each(function () {
      var name = $(this).attr("data-name"), value = $(this).val();
      if (value !== loaded[name]) {
        var parts = name.split("/");
        changes[parts[0]] = changes[parts[0]] || {};
        changes[parts[0]][parts[1]] = value; any = true;
      }
    });
    var key = ($("#vtconnect-key").val() || "").trim(), proxy = $("#vtconnect-proxy").val() || "";
    var hubToken = ($("#vtconnect-hub-token").val() || "").trim();
    if (key && !/^[0-9a-fA-F]{64}$/.test(key)) { status("That does not look like a VirusTotal API key (64 hex digits)."); return; }
    status("Saving...");
    var settingsSaved = new Promise(function (resolve, reject) {
      if (!any) { resolve(); return; }
      call("POST", changes, function (err, doc) {
        if (err) { showErrors(doc.errors || []); reject(doc.error || ("HTTP " + err.status)); } else { resolve(); }
      });
    });
    settingsSaved.then(function () {
      var jobs = [];
      if (key) { jobs.push(store("api_key", key)); }
      if (proxy) { jobs.push(store("proxy", proxy)); }
      if (hubToken) { jobs.push(store("remote_token", hubToken)); }
      return Promise.all(jobs);
    }).then(function () {
      service.post("apps/local/vtconnect", { configured: true }, function () {
        status("Saved."); load();
      });
    }).catch(function (why) {
      status("Not saved: " + (why && why.status ? "HTTP " + why.status : why));
    });
  });

  load();
});
