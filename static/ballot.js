/* The ballot, better with JavaScript: a running total, what is left, the draft kept on this
   phone as the rater goes, and a submit that never loses the answers. Without this file the
   form still posts to the server, which checks it the same way. Plain ES5: old phones too. */
(function () {
  "use strict";
  var counted = document.getElementById("counted");
  if (counted) {
    // This code's ballot is in the box: a draft left by a lost answer has nothing more to do.
    try { window.localStorage.removeItem("ob:draft:" + counted.getAttribute("data-code")); } catch (e) { /* none */ }
    return;
  }
  var form = document.getElementById("ballot");
  if (!form || !window.fetch || !window.JSON) return;

  var d = form.dataset;
  var key = "ob:draft:" + d.code;
  var points = [].slice.call(form.querySelectorAll("[data-point]"));
  var comment = form.elements.comment;
  var bar = document.getElementById("bar");
  var left = document.getElementById("left");
  var total = document.getElementById("total");
  var status = document.getElementById("status");
  var send = document.getElementById("send");
  var retry = document.getElementById("retry");
  var storage = null;
  var busy = false;

  try {
    storage = window.localStorage;
    storage.setItem(key + ":probe", "1");
    storage.removeItem(key + ":probe");
  } catch (e) {
    storage = null; // private mode or blocked: everything still works, minus the draft
  }

  function pointOf(el) {
    while (el && el !== form) {
      if (el.getAttribute && el.getAttribute("data-point")) return el;
      el = el.parentNode;
    }
    return null;
  }

  function valueOf(p) {
    var checked = p.querySelector("input:checked");
    if (checked) return checked.value;
    var number = p.querySelector("input[type=number]");
    return number && number.value.trim() !== "" ? number.value.trim() : null;
  }

  function scoreOf(p) {
    var checked = p.querySelector("input:checked");
    if (checked) return parseFloat(checked.getAttribute("data-s"));
    var value = valueOf(p);
    return value === null ? NaN : parseFloat(value);
  }

  function answers() {
    var result = {};
    points.forEach(function (p) {
      var value = valueOf(p);
      if (value !== null) result[p.getAttribute("data-point")] = value;
    });
    return result;
  }

  function save() {
    if (!storage) return;
    try {
      storage.setItem(key, JSON.stringify({ a: answers(), c: comment ? comment.value : "" }));
    } catch (e) { /* full storage: the page itself still holds the answers */ }
  }

  function restore() {
    var draft = null;
    if (storage) {
      try { draft = JSON.parse(storage.getItem(key) || "null"); } catch (e) { draft = null; }
    }
    if (!draft || !draft.a) return;
    var restored = false;
    points.forEach(function (p) {
      var value = draft.a[p.getAttribute("data-point")];
      if (value === undefined || valueOf(p) !== null) return; // what the page shows wins
      [].slice.call(p.querySelectorAll("input")).forEach(function (input) {
        if (input.type === "radio" && input.value === value) input.checked = restored = true;
        if (input.type === "number") { input.value = value; restored = true; }
      });
    });
    if (comment && !comment.value && draft.c) { comment.value = draft.c; restored = true; }
    if (restored) document.getElementById("restored").hidden = false;
  }

  function mark(p, missing) {
    var note = p.querySelector(".problem");
    if (missing) {
      p.className += p.className.indexOf("missing") < 0 ? " missing" : "";
      if (!note) {
        note = document.createElement("p");
        note.className = "problem";
        note.textContent = "！" + d.tPoint;
        p.insertBefore(note, p.querySelector(".grades, .num"));
      }
    } else {
      p.className = p.className.replace(/ ?missing/g, "");
      if (note) note.parentNode.removeChild(note);
    }
  }

  function update() {
    var sum = 0;
    var open = 0;
    points.forEach(function (p) {
      var score = scoreOf(p);
      if (isNaN(score)) open += 1;
      else sum += Math.round(score * 100); // hundredths: no binary fractions in the total
    });
    total.textContent = String(sum / 100);
    left.textContent = open ? d.tLeft.replace("{n}", open) : d.tDone;
    left.className = open ? "" : "ok";
  }

  function say(text, bad) {
    status.textContent = text;
    status.className = "status" + (bad ? " bad" : "");
  }

  function failed(text) {
    busy = false;
    send.disabled = false;
    retry.hidden = false;
    say(text, true);
    status.scrollIntoView({ block: "center" });
  }

  function submit(event) {
    if (event) event.preventDefault();
    if (busy) return; // a double tap sends once
    var missing = points.filter(function (p) { return valueOf(p) === null; });
    if (missing.length) {
      missing.forEach(function (p) { mark(p, true); });
      say(d.tMissing.replace("{n}", missing.length), true);
      missing[0].scrollIntoView({ block: "center" });
      var first = missing[0].querySelector("input");
      if (first) first.focus({ preventScroll: true });
      return;
    }
    busy = true;
    send.disabled = true;
    retry.hidden = true;
    say(d.tSending, false);
    save();
    var text = comment ? comment.value.trim() : "";
    fetch(d.api, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "Accept-Language": d.lang },
      body: JSON.stringify({ token: d.code, answers: answers(), comment: text ? comment.value : null }),
      credentials: "omit",
      cache: "no-store"
    }).then(function (response) {
      if (response.status === 201 || response.status === 200) {
        // Counted, now or before: only now may the phone forget the answers.
        if (storage) { try { storage.removeItem(key); } catch (e) { /* nothing to keep */ } }
        window.location.replace(response.status === 201 ? d.thanks : d.thanksAgain);
        return;
      }
      return response.json().then(function (body) {
        var reasons = body.problems && body.problems.length ? body.problems : [body.detail];
        failed(d.tRefused.replace("{reason}", reasons.join("；")));
      }, function () { failed(d.tFailed); });
    }, function () {
      failed(navigator.onLine === false ? d.tOffline : d.tFailed);
    });
  }

  form.addEventListener("change", function (event) {
    var p = pointOf(event.target);
    if (p && valueOf(p) !== null) mark(p, false);
    update();
    save();
  });
  form.addEventListener("input", function () { update(); save(); });
  form.addEventListener("submit", submit);
  retry.addEventListener("click", submit);

  restore();
  bar.hidden = false;
  update();
}());
