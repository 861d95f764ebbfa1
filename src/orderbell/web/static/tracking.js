// The tracking page follows its order live: the server pushes the re-rendered progress
// section over server-sent events; we swap it in. Without JavaScript the page still works.
(function () {
  "use strict";
  var main = document.getElementById("main");
  if (!main || !window.EventSource) return;
  var url = main.getAttribute("data-events");
  if (!url) return;
  var source = new EventSource(url);
  source.addEventListener("progress", function (event) {
    var current = document.getElementById("progress");
    if (!current) return;
    var holder = document.createElement("div");
    holder.innerHTML = event.data; // server-rendered, autoescaped HTML from our own origin
    var next = holder.firstElementChild;
    if (next) current.replaceWith(next);
  });
})();
