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
