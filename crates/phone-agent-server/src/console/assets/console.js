// phone-agent console: the live view's updates over Server-Sent Events, and call durations.
// Whatever the server sends is inserted as text (textContent), never parsed as HTML.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) {
    return;
  }

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function clock(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    if (s >= 3600) {
      return Math.floor(s / 3600) + ":" + pad(Math.floor(s / 60) % 60) + ":" + pad(s % 60);
    }
    return pad(Math.floor(s / 60)) + ":" + pad(s % 60);
  }

  function tick() {
    live.querySelectorAll("section.call[data-started]").forEach(function (s) {
      var d = s.querySelector('[data-field="duration"]');
      d.textContent = clock(Date.now() - Number(s.dataset.started));
    });
  }

  function section(sid) {
    return live.querySelector('section.call[data-call="' + CSS.escape(sid) + '"]');
  }

  function field(s, name, value) {
    s.querySelector('[data-field="' + name + '"]').textContent = String(value);
  }

  function span(cls, text) {
    var e = document.createElement("span");
    e.className = cls;
    e.textContent = text;
    return e;
  }

  function addLine(s, u) {
    var n = Number(s.dataset.lines);
    if (u.index < n) {
      return; // already shown
    }
    if (u.index > n) {
      location.reload(); // missed one
      return;
    }
    var li = document.createElement("li");
    li.className = "line " + (u.speaker === "agent" ? "agent" : "caller");
    li.appendChild(span("at", clock(u.at_ms)));
    li.appendChild(document.createTextNode(" "));
    li.appendChild(span("speaker", u.speaker));
    li.appendChild(document.createTextNode(" "));
    li.appendChild(span("text", u.text));
    s.querySelector("ol.transcript").appendChild(li);
    s.dataset.lines = String(n + 1);
  }

  function ended(s) {
    s.classList.add("ended");
    s.removeAttribute("data-started");
    field(s, "speaking", "call ended");
    s.querySelectorAll("button").forEach(function (b) {
      b.disabled = true;
    });
  }

  tick();
  setInterval(tick, 1000);

  var events = new EventSource(live.dataset.events);
  events.addEventListener("hello", function (e) {
    var d = JSON.parse(e.data);
    var shown = live.querySelectorAll("section.call:not(.ended)").length;
    var current = d.calls.length === shown && d.calls.every(function (c) {
      var s = section(c.call_sid);
      return s !== null && Number(s.dataset.lines) === c.lines;
    });
    if (!current) {
      location.reload();
    }
  });
  events.addEventListener("resync", function () {
    location.reload();
  });
  events.addEventListener("update", function (e) {
    var u = JSON.parse(e.data);
    var s = section(u.call_sid);
    if (u.type === "ended") {
      if (s) {
        ended(s);
      }
      return;
    }
    if (!s) {
      location.reload(); // a new call: the server renders it
      return;
    }
    if (u.type === "call") {
      field(s, "speaking", u.speaking);
      field(s, "barge_ins", u.barge_ins);
      field(s, "tool_calls", u.tool_calls);
    } else if (u.type === "line") {
      addLine(s, u);
    }
  });
  live.dataset.connected = "yes";
})();
