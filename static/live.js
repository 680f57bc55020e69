// Keeps a dashboard or projector current: turnout from each pushed event, and the figures
// (which move only every K ballots) re-rendered by the server when they change. The page names
// its stream (data-events, data-event); the organizer's pages default to the meeting's events.
(function () {
  "use strict";
  var turnout = document.getElementById("turnout");
  if (!turnout || !window.EventSource) { return; }
  var meeting = turnout.getAttribute("data-meeting");
  var url = turnout.getAttribute("data-events") || "/api/v1/meetings/" + meeting + "/events";
  var name = turnout.getAttribute("data-event") || "tally";
  var status = document.getElementById("live-status");
  var states = {
    draft: turnout.getAttribute("data-state-draft") || "未开始",
    open: turnout.getAttribute("data-state-open") || "进行中",
    closed: turnout.getAttribute("data-state-closed") || "已结束",
    voided: turnout.getAttribute("data-state-voided") || "已作废"
  };
  var last = null;

  function set(name, value) {
    var nodes = document.querySelectorAll('[data-live="' + name + '"]');
    for (var i = 0; i < nodes.length; i++) { nodes[i].textContent = value; }
  }

  function refresh() {
    var figures = document.getElementById("figures");
    var score = document.getElementById("projector-score");
    if (!figures && !score) { return; }
    if (score) { window.location.reload(); return; }
    fetch("/meetings/" + meeting + "/live/fragment", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html) { figures.outerHTML = html; } });
  }

  function say(text, connected) {
    if (!status) { return; }
    status.textContent = text;
    status.setAttribute("data-connected", connected ? "1" : "0");
  }

  var source = new EventSource(url);
  source.addEventListener(name, function (event) {
    var s = JSON.parse(event.data);
    for (var key in s) {
      if (Object.prototype.hasOwnProperty.call(s, key) && key !== "state") { set(key, s[key]); }
    }
    set("state", states[s.state] || s.state);
    if (last && (last.published_at_count !== s.published_at_count || last.state !== s.state)) { refresh(); }
    last = s;
    say((status && status.getAttribute("data-t-live")) || "实时更新中", true);
  });
  source.onerror = function () {
    say((status && status.getAttribute("data-t-lost")) || "连接中断，正在重新连接…", false);
  };
})();
