// Vigil console: seek the player from timeline marks, move the playhead, refresh the live counters.
(function () {
  "use strict";
  var player = document.getElementById("player");
  function seek(t) {
    if (!player || isNaN(t)) return;
    player.currentTime = t;
    player.scrollIntoView({ block: "center" });
  }
  document.addEventListener("click", function (e) {
    var el = e.target.closest ? e.target.closest("[data-seek]") : null;
    if (el) { e.preventDefault(); seek(parseFloat(el.getAttribute("data-seek"))); return; }
    var marks = e.target.closest ? e.target.closest("svg.marks") : null;
    if (marks && player && player.duration) {
      var box = marks.getBoundingClientRect();
      seek(player.duration * (e.clientX - box.left) / box.width);
    }
  });
  var head = document.querySelector("svg.marks .playhead");
  if (player && head) {
    player.addEventListener("timeupdate", function () {
      if (player.duration) head.setAttribute("x", String(1000 * player.currentTime / player.duration));
    });
  }
  var counters = document.querySelector("[data-counters]");
  function refresh() {
    fetch("/api/counters", { credentials: "same-origin" }).then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) return;
        counters.querySelectorAll("[data-counter]").forEach(function (el) {
          var v = data[el.getAttribute("data-counter")];
          el.textContent = v === undefined || v === null ? "—" : String(v);
        });
      }).catch(function () {});
  }
  if (counters) { refresh(); setInterval(refresh, 15000); }
})();

// a video waiting for the detectors: the page reloads when its status changes (the verdict has landed)
(function () {
  const el = document.querySelector("[data-video-status]");
  if (!el || el.dataset.videoStatus !== "queued") return;
  const uid = el.dataset.videoUid;
  const timer = setInterval(async () => {
    try {
      const r = await fetch("/api/videos/" + uid, {credentials: "same-origin"});
      if (!r.ok) return;
      const data = await r.json();
      if (data.video && data.video.status !== "queued") { clearInterval(timer); location.reload(); }
    } catch (e) { /* try again next tick */ }
  }, 3000);
})();
