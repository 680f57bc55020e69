/* The ballot, better with JavaScript: a running total, what is left, the draft kept on this
   phone as the rater goes, a review of every answer before the final submit (as paper lets a
   rater look the sheet over), and a submit that never loses the answers nor waits forever.
   Without this file the form still posts to the server, which checks it the same way.
   Plain ES5: old phones too. */
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
  var review = document.getElementById("review");
  var reviewList = document.getElementById("review-list");
  var confirmButton = document.getElementById("confirm");
  var timeout = parseInt(d.timeout, 10) || 20000;
  var storage = null;
  var busy = false;
  var attempt = 0;

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

  function failed(text, final) {
    busy = false;
    send.disabled = !!final;
    confirmButton.disabled = false;
    retry.hidden = !!final; // after close, sending again cannot help
    say(text, true);
    status.scrollIntoView({ block: "center" });
  }

  function hideReview() {
    review.hidden = true;
  }

  function labelOf(p) {
    var checked = p.querySelector("input:checked");
    if (checked) {
      var text = checked.nextSibling.firstChild; // the grade's name, before its score
      return text ? text.nodeValue : checked.value;
    }
    return valueOf(p);
  }

  // Every answer at a glance, numbered as on the page; a tap on one goes back to that point.
  function showReview() {
    while (reviewList.firstChild) reviewList.removeChild(reviewList.firstChild);
    points.forEach(function (p) {
      var item = document.createElement("li");
      var link = document.createElement("a");
      var number = document.createElement("span");
      var grade = document.createElement("b");
      link.href = "#" + p.id;
      number.className = "n";
      number.textContent = p.querySelector(".n").textContent;
      grade.textContent = labelOf(p);
      link.appendChild(number);
      link.appendChild(document.createTextNode(" "));
      link.appendChild(grade);
      link.addEventListener("click", hideReview);
      item.appendChild(link);
      reviewList.appendChild(item);
    });
    document.getElementById("review-total").textContent = total.textContent;
    document.getElementById("review-comment").hidden = !(comment && comment.value.trim());
    review.hidden = false;
    say("", false);
    review.scrollIntoView({ block: "start" });
    review.focus({ preventScroll: true });
  }

  function check(event) {
    if (event) event.preventDefault();
    if (busy) return;
    var missing = points.filter(function (p) { return valueOf(p) === null; });
    if (missing.length) {
      hideReview();
      missing.forEach(function (p) { mark(p, true); });
      say(d.tMissing.replace("{n}", missing.length), true);
      missing[0].scrollIntoView({ block: "center" });
      var first = missing[0].querySelector("input");
      if (first) first.focus({ preventScroll: true });
      return;
    }
    save();
    showReview();
  }

  function submit(event) {
    if (event) event.preventDefault();
    if (busy) return; // a double tap sends once
    busy = true;
    attempt += 1;
    var mine = attempt;
    send.disabled = true;
    confirmButton.disabled = true;
    retry.hidden = true;
    say(d.tSending, false);
    save();
    var text = comment ? comment.value.trim() : "";
    // Bad Wi-Fi can hold a request open for minutes: give up after `timeout`, keep the answers,
    // offer to send again. A late answer to the abandoned attempt is ignored; a repeat of a
    // ballot that did count comes back "already counted", never as a second ballot.
    var controller = window.AbortController ? new window.AbortController() : null;
    var timer = window.setTimeout(function () {
      if (mine !== attempt || !busy) return;
      attempt += 1;
      if (controller) controller.abort();
      failed(d.tTimeout);
    }, timeout);
    fetch(d.api, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "Accept-Language": d.lang },
      body: JSON.stringify({ token: d.code, answers: answers(), comment: text ? comment.value : null }),
      credentials: "omit",
      cache: "no-store",
      signal: controller ? controller.signal : undefined
    }).then(function (response) {
      window.clearTimeout(timer);
      if (mine !== attempt) return;
      if (response.status === 201 || response.status === 200) {
        // Counted, now or before: only now may the phone forget the answers.
        if (storage) { try { storage.removeItem(key); } catch (e) { /* nothing to keep */ } }
        window.location.replace(response.status === 201 ? d.thanks : d.thanksAgain);
        return;
      }
      return response.json().then(function (body) {
        if (body.code === "meeting_not_open") {
          // The page was shown for an open meeting: it has closed since.
          failed(d.tClosed, true);
          return;
        }
        var reasons = body.problems && body.problems.length ? body.problems : [body.detail];
        failed(d.tRefused.replace("{reason}", reasons.join("；")));
      }, function () { failed(d.tFailed); });
    }, function () {
      window.clearTimeout(timer);
      if (mine !== attempt) return; // abandoned on time-out: already said
      failed(navigator.onLine === false ? d.tOffline : d.tFailed);
    });
  }

  form.addEventListener("change", function (event) {
    var p = pointOf(event.target);
    if (p && valueOf(p) !== null) mark(p, false);
    hideReview();
    update();
    save();
  });
  form.addEventListener("input", function () { hideReview(); update(); save(); });
  form.addEventListener("submit", check);
  confirmButton.addEventListener("click", submit);
  document.getElementById("back").addEventListener("click", function () {
    hideReview();
    send.scrollIntoView({ block: "center" });
  });
  retry.addEventListener("click", submit);

  restore();
  bar.hidden = false;
  update();
}());
