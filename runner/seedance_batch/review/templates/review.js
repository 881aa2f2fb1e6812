(function () {
  "use strict";

  // The review page: keyboard first. One take is current; each action is a POST answered only
  // after the ledger committed it, and the page shows a decision only once the server says so.
  var token = document.querySelector('meta[name="review-token"]').getAttribute("content");
  var takes = Array.prototype.slice.call(document.querySelectorAll(".take"));
  var byKey = new Map(takes.map(function (take) { return [take.getAttribute("data-key"), take]; }));
  var statusLine = document.getElementById("status");
  var currentLine = document.getElementById("current");
  var editor = document.getElementById("note-editor");
  var noteText = document.getElementById("note-text");
  var keysPanel = document.getElementById("keys");
  var current = -1;
  var queue = Promise.resolve();  // actions are sent one after another, in the order made
  var pending = 0;

  // --- players: made when a take comes near the screen, or is selected ----------------------
  function player(take) {
    var video = take.querySelector("video");
    if (video) { return video; }
    var frame = take.querySelector(".frame[data-media]");
    if (!frame) { return null; }
    video = document.createElement("video");
    video.controls = true;
    video.preload = "metadata";
    video.playsInline = true;
    video.className = frame.className.split(" ").filter(function (name) { return name.indexOf("r-") === 0; }).join(" ");
    video.src = frame.getAttribute("data-media");
    frame.replaceWith(video);
    return video;
  }
  if ("IntersectionObserver" in window) {
    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (entry.isIntersecting) { observer.unobserve(entry.target); player(entry.target); }
      });
    }, { rootMargin: "300px" });
    takes.forEach(function (take) { if (take.querySelector(".frame[data-media]")) { observer.observe(take); } });
  } else {
    takes.forEach(player);
  }

  // --- which take is current ----------------------------------------------------------------
  function select(index) {
    if (!takes.length) { return; }
    index = Math.max(0, Math.min(takes.length - 1, index));
    if (current >= 0) { takes[current].classList.remove("current"); }
    current = index;
    var take = takes[current];
    take.classList.add("current");
    take.focus({ preventScroll: true });
    take.scrollIntoView({ block: "nearest", inline: "nearest" });
    player(take);
    history.replaceState(null, "", "#take-" + current);
    describe(take);
  }

  function describe(take) {
    var verdict = take.getAttribute("data-verdict");
    var picked = take.getAttribute("data-picked") === "true" ? ", picked" : "";
    currentLine.textContent = (current + 1) + "/" + takes.length + " " + take.getAttribute("data-label") +
      " (" + verdict + picked + ")";
    var decidable = take.getAttribute("data-decidable") === "true";
    document.querySelectorAll('.bar button[data-action="approve"], .bar button[data-action="pick"]')
      .forEach(function (button) { button.disabled = !decidable; });
  }

  function sameColumn(step) {
    var take = takes[current];
    var sheet = take.getAttribute("data-sheet"), col = take.getAttribute("data-col");
    var row = +take.getAttribute("data-row");
    for (var i = current + step; i >= 0 && i < takes.length; i += step) {
      var other = takes[i];
      if (other.getAttribute("data-sheet") !== sheet) { return select(i); }
      if (+other.getAttribute("data-row") !== row && other.getAttribute("data-col") === col) { return select(i); }
    }
  }

  // --- decisions ----------------------------------------------------------------------------
  function show(text, isError) {
    statusLine.textContent = text;
    statusLine.classList.toggle("error", !!isError);
  }

  function apply(decision) {
    var take = byKey.get(decision.key);
    if (!take) { return; }
    take.setAttribute("data-verdict", decision.verdict);
    take.setAttribute("data-picked", decision.picked ? "true" : "false");
    take.querySelector(".verdict").textContent = decision.verdict;
    take.querySelector(".note").textContent = decision.note;
    take.querySelector(".who").textContent = decision.reviewer + " · " + when(decision.at);
  }

  // "2026-04-19T10:00:05.123+00:00" -> "2026-04-19 10:00:05 UTC", as the page writes it.
  function when(stamp) {
    var moment = new Date(stamp);
    return isNaN(moment) ? stamp : moment.toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }

  function recount() {
    var counts = { approved: 0, rejected: 0, undecided: 0, picked: 0 };
    takes.forEach(function (take) {
      counts[take.getAttribute("data-verdict")] += 1;
      if (take.getAttribute("data-picked") === "true") { counts.picked += 1; }
    });
    Object.keys(counts).forEach(function (name) {
      document.querySelector('#tally [data-count="' + name + '"]').textContent = counts[name] + " " + name;
    });
  }

  function send(take, action, note) {
    var body = { key: take.getAttribute("data-key"), action: action };
    if (action === "note") { body.note = note; }
    var label = take.getAttribute("data-label");
    pending += 1;
    show("saving " + label + "…");
    queue = queue.then(function () {
      return fetch("/api/decision", {
        method: "POST", credentials: "same-origin", cache: "no-store",
        headers: { "Content-Type": "application/json", "X-Review-Token": token },
        body: JSON.stringify(body)
      }).then(function (response) {
        return response.json().catch(function () { return { error: "the server answered " + response.status }; })
          .then(function (answer) {
            if (!response.ok || !answer.decisions) { throw new Error(answer.error || ("HTTP " + response.status)); }
            answer.decisions.forEach(apply);
            recount();
            if (takes[current] === take) { describe(take); }
            var mine = answer.decisions[0];
            var unpicked = answer.decisions.length > 1 ? " (another take of its combination unpicked)" : "";
            show("saved: " + label + ": " + (action === "note" ? "note" : mine.verdict + (mine.picked ? ", picked" : "")) +
              unpicked);
          });
      }).catch(function (error) {
        show("not saved: " + label + ": " + error.message, true);
      }).then(function () { pending -= 1; });
    });
    return queue;
  }

  function act(action) {
    var take = takes[current];
    if (!take) { return; }
    if ((action === "approve" || action === "pick") && take.getAttribute("data-decidable") !== "true") {
      show(take.getAttribute("data-label") + " has no video yet: it can be rejected, not approved or picked", true);
      return;
    }
    if (action === "pick" && take.getAttribute("data-picked") === "true") { action = "unpick"; }
    if (action === "note") { openNote(take); return; }
    send(take, action);
    if (action === "approve" || action === "reject") { select(current + 1); }
  }

  // --- notes --------------------------------------------------------------------------------
  var noteFor = null;
  function openNote(take) {
    noteFor = take;
    editor.hidden = false;
    noteText.value = take.querySelector(".note").textContent;
    noteText.focus();
  }
  function closeNote() {
    editor.hidden = true;
    noteFor = null;
    if (current >= 0) { takes[current].focus({ preventScroll: true }); }
  }
  noteText.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { event.preventDefault(); closeNote(); return; }
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      var take = noteFor;
      var text = noteText.value;
      closeNote();
      if (take) { send(take, "note", text); }
    }
  });

  // --- keys and clicks ----------------------------------------------------------------------
  var KEYS = {
    ArrowRight: function () { select(current + 1); }, j: function () { select(current + 1); },
    ArrowLeft: function () { select(current - 1); }, k: function () { select(current - 1); },
    ArrowDown: function () { sameColumn(1); }, ArrowUp: function () { sameColumn(-1); },
    " ": function () { togglePlay(); },
    a: function () { act("approve"); }, r: function () { act("reject"); }, u: function () { act("clear"); },
    p: function () { act("pick"); }, n: function () { act("note"); },
    "?": function () { keysPanel.hidden = !keysPanel.hidden; }
  };
  function togglePlay() {
    var video = takes[current] && player(takes[current]);
    if (!video) { show("no video to play for this take", true); return; }
    if (video.paused) {
      video.play().catch(function (error) { show("cannot play: " + error.message, true); });
    } else {
      video.pause();
    }
  }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var target = event.target;
    if (target && (target.tagName === "TEXTAREA" || target.tagName === "INPUT" || target.tagName === "BUTTON")) {
      return;
    }
    var handler = KEYS[event.key];
    if (!handler) { return; }
    event.preventDefault();
    if (current < 0) { select(0); if (event.key !== " ") { return; } }
    handler();
  });
  takes.forEach(function (take, index) {
    take.addEventListener("click", function () { if (index !== current) { select(index); } });
  });
  document.querySelectorAll(".bar button[data-action]").forEach(function (button) {
    button.addEventListener("click", function () { act(button.getAttribute("data-action")); });
  });
  window.addEventListener("beforeunload", function (event) {
    if (pending > 0 || noteFor !== null) { event.preventDefault(); event.returnValue = ""; }
  });

  // "#take-N" in the address: that take is current (a reload keeps the reviewer's place).
  function fromAddress() {
    var found = /^#take-(\d+)$/.exec(location.hash);
    select(found ? +found[1] : Math.max(current, 0));
  }
  window.addEventListener("hashchange", fromAddress);
  fromAddress();
  document.documentElement.setAttribute("data-ready", "true");
})();
