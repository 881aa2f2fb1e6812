(function () {
  "use strict";

  // Each downloaded video is a light placeholder until its cell comes near the screen;
  // then it becomes a video player with controls, preloading only metadata. A 2,000-job sheet would
  // otherwise build 2,000 players (and ask for 2,000 files) before showing anything.
  // "#t=0.1" makes the player show a frame instead of a black tile (media fragment).
  function makePlayer(frame) {
    var video = document.createElement("video");
    video.controls = true;
    video.preload = "metadata";
    video.playsInline = true;
    video.title = frame.title;
    video.style.aspectRatio = frame.style.aspectRatio;
    video.src = frame.getAttribute("data-video") + "#t=0.1";
    frame.replaceWith(video);
  }
  var frames = document.querySelectorAll(".frame[data-video]");
  if ("IntersectionObserver" in window) {
    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (entry.isIntersecting) {
          observer.unobserve(entry.target);
          makePlayer(entry.target);
        }
      });
    }, { rootMargin: "400px" });
    frames.forEach(function (frame) { observer.observe(frame); });
  } else {
    frames.forEach(makePlayer);
  }

  var table = document.getElementById("jobs");
  if (!table) { return; }
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var filter = document.getElementById("filter");
  var state = document.getElementById("state");
  var shown = document.getElementById("shown");
  var texts = null;

  function cellValue(row, index, numeric) {
    var cell = row.cells[index];
    if (numeric) { return parseFloat(cell.getAttribute("data-v")) || 0; }
    return cell.textContent.trim().toLowerCase();
  }

  function sortBy(header) {
    var index = header.cellIndex;
    var numeric = header.getAttribute("data-sort") === "num";
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th[aria-sort]").forEach(function (th) { th.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var keyed = rows.map(function (row, order) { return [cellValue(row, index, numeric), order, row]; });
    keyed.sort(function (a, b) {
      var diff = numeric ? a[0] - b[0] : a[0].localeCompare(b[0], undefined, { numeric: true });
      return (ascending ? diff : -diff) || a[1] - b[1];
    });
    rows = keyed.map(function (item) { return item[2]; });
    var fragment = document.createDocumentFragment();
    rows.forEach(function (row) { fragment.appendChild(row); });
    body.appendChild(fragment);
  }

  function applyFilter() {
    if (texts === null) {
      texts = new Map();
      rows.forEach(function (row) { texts.set(row, row.textContent.toLowerCase()); });
    }
    var words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    var wanted = state.value;
    var count = 0;
    rows.forEach(function (row) {
      var text = texts.get(row);
      var stateOk = !wanted || (wanted === "problems" ? row.hasAttribute("data-problem") : row.getAttribute("data-state") === wanted);
      var visible = stateOk && words.every(function (word) { return text.indexOf(word) !== -1; });
      row.hidden = !visible;
      if (visible) { count += 1; }
    });
    shown.textContent = count + " of " + rows.length + " jobs";
  }

  table.querySelectorAll("th[data-sort]").forEach(function (header) {
    header.tabIndex = 0;
    header.addEventListener("click", function () { sortBy(header); });
    header.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortBy(header); }
    });
  });
  filter.addEventListener("input", applyFilter);
  state.addEventListener("change", applyFilter);
})();
