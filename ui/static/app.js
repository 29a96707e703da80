// pofr ui: the only script. Every page works without it; it adds filtering
// the process tree as you type, and expand/collapse all. It reads recorded
// strings only through textContent and dataset, never as HTML.
"use strict";
(function () {
  var tree = document.getElementById("tree");
  if (!tree) return;
  var input = document.getElementById("treefilter");
  var items = Array.prototype.slice.call(tree.querySelectorAll("li"));
  // Children before parents: a parent is kept when a descendant matches.
  items.reverse();
  function filter() {
    var f = input.value.trim().toLowerCase();
    items.forEach(function (li) {
      var self = f === "" || (li.dataset.s || "").indexOf(f) >= 0;
      var kid = false;
      if (!self && f !== "") {
        var sub = li.querySelector(":scope > details > ul");
        if (sub) {
          for (var c = sub.firstElementChild; c; c = c.nextElementSibling) {
            if (!c.classList.contains("hide")) { kid = true; break; }
          }
        }
      }
      li.classList.toggle("hide", !(self || kid));
      li.classList.toggle("match", f !== "" && self);
      if (kid) {
        var d = li.querySelector(":scope > details");
        if (d) d.open = true;
      }
    });
  }
  if (input) {
    var timer = 0;
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(filter, 120);
    });
  }
  function all(open) {
    tree.querySelectorAll("details").forEach(function (d) { d.open = open; });
  }
  var ex = document.getElementById("expand"), co = document.getElementById("collapse");
  if (ex && co) {
    ex.hidden = false;
    co.hidden = false;
    ex.addEventListener("click", function () { all(true); });
    co.addEventListener("click", function () { all(false); });
  }
})();
