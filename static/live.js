// Keeps a dashboard or projector current: turnout from each pushed event, and the figures
// (which move only every K ballots) re-rendered by the server when they change.
(function () {
  "use strict";
  var turnout = document.getElementById("turnout");
  if (!turnout || !window.EventSource) { return; }
  var meeting = turnout.getAttribute("data-meeting");
  var status = document.getElementById("live-status");
  var states = { draft: "未开始", open: "进行中", closed: "已结束" };
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

  var source = new EventSource("/api/v1/meetings/" + meeting + "/events");
  source.addEventListener("tally", function (event) {
    var s = JSON.parse(event.data);
    set("ballots_counted", s.ballots_counted);
    set("tokens_issued", s.tokens_issued);
    set("attendance", s.attendance);
    set("state", states[s.state] || s.state);
    if (last && (last.published_at_count !== s.published_at_count || last.state !== s.state)) { refresh(); }
    last = s;
    if (status) { status.textContent = "实时更新中"; }
  });
  source.onerror = function () { if (status) { status.textContent = "连接中断，正在重新连接…"; } };
})();
