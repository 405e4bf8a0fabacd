// privatune portal: small progressive enhancements. Every page works without this file
// (forms post and redirect); with it, HTMX requests carry the CSRF token, uploads show per-file
// progress, secrets can be copied, and charts draw.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // HTMX: every request this page makes carries the CSRF token (cookie-authenticated).
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRFToken"] = csrfToken();
  });

  // Confirm before destructive actions: <form data-confirm="Delete this document?">
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  }, true);

  // Copy buttons: <button data-copy="#secret">
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) return;
    var text = source.value !== undefined ? source.value : source.textContent;
    navigator.clipboard.writeText(text.trim()).then(function () {
      button.textContent = "Copied";
      button.setAttribute("aria-live", "polite");
    });
  });

  // What became of one uploaded file (a ZIP archive names several documents): stored, already
  // present, or quarantined at once with the reason (an archive refused when unpacked).
  function uploadOutcome(body) {
    var docs = body.documents || [];
    var held = docs.filter(function (d) { return d.status === "quarantined"; });
    if (held.length) {
      return { text: "quarantined: " + held.map(function (d) { return d.failure_reason; }).join("; "), tone: "bad" };
    }
    if (!body.created) return { text: "already present", tone: "info" };
    var text = docs.length > 1 ? body.created + " files stored" : "stored";
    if (body.already_present) text += ", " + body.already_present + " already present";
    return { text: text, tone: "ok" };
  }

  // Drag-and-drop upload with a progress bar per file. The form posts to the JSON API with the
  // session cookie and CSRF token; without JavaScript it posts as a plain form.
  function initUpload(zone) {
    var form = zone.closest("form");
    var input = form.querySelector('input[type="file"]');
    var list = document.getElementById(zone.getAttribute("data-list"));
    var endpoint = zone.getAttribute("data-endpoint");
    var reloadTarget = zone.getAttribute("data-done");

    function send(files) {
      var pending = files.length;
      Array.prototype.forEach.call(files, function (file) {
        var item = document.createElement("li");
        var name = document.createElement("span");
        name.textContent = file.name;
        var bar = document.createElement("progress");
        bar.max = 100;
        bar.value = 0;
        bar.setAttribute("aria-label", "upload of " + file.name);
        var state = document.createElement("span");
        state.className = "small";
        state.textContent = "uploading";
        item.append(name, bar, state);
        list.appendChild(item);
        var data = new FormData();
        data.append("files", file, file.name);
        var xhr = new XMLHttpRequest();
        xhr.open("POST", endpoint);
        xhr.setRequestHeader("X-CSRFToken", csrfToken());
        xhr.upload.addEventListener("progress", function (e) {
          if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total);
        });
        xhr.addEventListener("load", function () {
          bar.value = 100;
          var body = {};
          try { body = JSON.parse(xhr.responseText); } catch (err) { /* not JSON */ }
          if (xhr.status === 201) {
            var outcome = uploadOutcome(body);
            state.textContent = outcome.text;
            state.className = "badge " + outcome.tone;
          } else {
            state.textContent = (body.error && body.error.message) || ("failed (" + xhr.status + ")");
            state.className = "badge bad";
          }
          pending -= 1;
          if (pending === 0 && reloadTarget && window.htmx) {
            window.htmx.trigger(reloadTarget, "refresh");
          }
        });
        xhr.addEventListener("error", function () {
          state.textContent = "network error";
          state.className = "badge bad";
          pending -= 1;
        });
        xhr.send(data);
      });
    }

    zone.addEventListener("dragover", function (e) { e.preventDefault(); zone.classList.add("dragover"); });
    zone.addEventListener("dragleave", function () { zone.classList.remove("dragover"); });
    zone.addEventListener("drop", function (e) {
      e.preventDefault();
      zone.classList.remove("dragover");
      send(e.dataTransfer.files);
    });
    form.addEventListener("submit", function (e) {
      if (!input.files.length) return;
      e.preventDefault();
      send(input.files);
      input.value = "";
    });
  }

  // A line chart from JSON data: <div data-chart='{"x": [...], "series": [{"label": .., "values": [..]}]}'>
  var charts = {};
  function drawChart(el) {
    if (!window.uPlot) return;
    var spec = JSON.parse(el.getAttribute("data-chart"));
    var data = [spec.x].concat(spec.series.map(function (s) { return s.values; }));
    var colors = ["#1f5fbf", "#c0392b", "#17663a", "#7a4b00"];
    var opts = {
      width: Math.max(320, el.clientWidth - 16),
      height: spec.height || 260,
      scales: { x: { time: false } },
      axes: [{ label: spec.xlabel || "" }, { label: spec.ylabel || "" }],
      series: [{ label: spec.xlabel || "x" }].concat(spec.series.map(function (s, i) {
        return { label: s.label, stroke: colors[i % colors.length], width: 2, spanGaps: true, points: { show: s.points || false } };
      })),
    };
    el.innerHTML = "";
    charts[el.id] = new window.uPlot(opts, data, el);
  }

  // Live run progress: server-sent events append loss points to the run's chart.
  function followRun(el) {
    var source = new EventSource(el.getAttribute("data-events"));
    var chart = null;
    source.addEventListener("progress", function (e) {
      var p = JSON.parse(e.data);
      var bar = document.getElementById("run-progress");
      if (bar && p.total_steps) { bar.max = p.total_steps; bar.value = p.step; }
      var text = document.getElementById("run-progress-text");
      if (text) text.textContent = p.text;
      chart = charts["loss-chart"];
      if (chart && p.points && p.points.length) {
        var data = chart.data.map(function (col) { return Array.prototype.slice.call(col); });
        p.points.forEach(function (pt) {
          var last = data[0].length - 1;
          var loss = pt.loss === undefined ? null : pt.loss;
          var val = pt.val_loss === undefined ? null : pt.val_loss;
          if (last >= 0 && data[0][last] === pt.step) {  // a validation loss at a step shown
            if (loss !== null) data[1][last] = loss;
            if (data.length > 2 && val !== null) data[2][last] = val;
            return;
          }
          data[0].push(pt.step);
          data[1].push(loss);
          if (data.length > 2) data[2].push(val);
        });
        chart.setData(data);
        var empty = document.getElementById("loss-empty");
        if (empty) empty.hidden = true;
      }
    });
    // Stages, checkpoints or events changed: the page's timeline section reloads itself.
    source.addEventListener("timeline", function () {
      var section = document.getElementById("run-timeline");
      if (section && window.htmx) window.htmx.trigger(section, "refresh");
    });
    source.addEventListener("state", function (e) {
      var state = JSON.parse(e.data);
      var badge = document.getElementById("run-status");
      if (badge) { badge.textContent = state.status; badge.className = "badge " + state.tone; }
      if (state.terminal) { source.close(); if (state.reload) window.location.reload(); }
    });
    source.addEventListener("error", function () { /* EventSource reconnects by itself */ });
  }

  function init(root) {
    root.querySelectorAll("[data-upload]").forEach(initUpload);
    root.querySelectorAll("[data-chart]").forEach(drawChart);
    root.querySelectorAll("[data-follow-run]").forEach(followRun);
  }

  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:afterSwap", function (e) { init(e.target); });
  window.privatune = { init: init, charts: charts };
})();

// ---- dataset review (screen 5) ----
// A refused decision (a merged example, an empty edit) comes back as the row with the reason:
// show it in place rather than dropping the response as HTMX does with 4xx answers.
(function () {
  "use strict";
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    var target = event.detail.target;
    if (status >= 400 && status < 500 && target && target.closest && target.closest("[data-review-row]")) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();

// --- settings, members, keys, operator (screens 10-12) ---
// Forms marked data-swap-errors show the page's answer even when it is an error (a 400 with the
// message next to the field, a 403), as they would without JavaScript; htmx 2 swaps only 2xx.
(function () {
  "use strict";
  document.addEventListener("htmx:beforeSwap", function (event) {
    var source = event.detail.requestConfig && event.detail.requestConfig.elt;
    var form = source && source.closest && source.closest("[data-swap-errors]");
    var status = event.detail.xhr.status;
    if (form && status >= 400 && status < 500) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
  // A one-time secret swapped in takes the focus, so keyboard and screen-reader users land on it.
  document.addEventListener("htmx:afterSettle", function (event) {
    var source = event.detail.requestConfig && event.detail.requestConfig.elt;
    if (!(source && source.closest && source.closest("[data-swap-errors]"))) return;
    var first = document.querySelector("#main [data-autofocus]");
    if (first) first.focus();
  });
})();

// ---- deployments and chat (screens 8-9) ----
// Deployments: the runtime form shows the fields of the chosen kind (all of them without
// JavaScript). Chat: the question and the conversation so far are posted to the page's
// server-sent-events endpoint and the answer is written in as its pieces arrive; sources link
// to the document viewer, which scrolls the cited span into view.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function showKindFields(form) {
    var select = form.querySelector('select[name="kind"]');
    if (!select) return;
    function update() {
      form.querySelectorAll("[data-kinds]").forEach(function (field) {
        var kinds = field.getAttribute("data-kinds").split(" ");
        field.hidden = kinds.indexOf(select.value) < 0;
      });
    }
    select.addEventListener("change", update);
    update();
  }

  // One server-sent-events stream read from a fetch() answer: calls onEvent(name, data).
  function readEvents(response, onEvent) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    function dispatch(block) {
      var name = "message";
      var data = [];
      block.split(/\r\n|\r|\n/).forEach(function (line) {
        if (line.indexOf("event:") === 0) name = line.slice(6).trim();
        else if (line.indexOf("data:") === 0) data.push(line.slice(5).replace(/^ /, ""));
      });
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) {
          if (buffer.trim()) dispatch(buffer);
          return;
        }
        // Events end with a blank line (CRLF, LF or CR); one cut between chunks waits.
        buffer += decoder.decode(chunk.value, { stream: true });
        var end;
        while ((end = buffer.search(/\r\n\r\n|\n\n|\r\r/)) >= 0) {
          var separator = buffer.slice(end, end + 4) === "\r\n\r\n" ? 4 : 2;
          dispatch(buffer.slice(0, end));
          buffer = buffer.slice(end + separator);
        }
        return pump();
      });
    }
    return pump();
  }

  function element(tag, className, text) {
    var el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function showCitations(message, citations) {
    if (!citations.length) return;
    var box = element("div", "citations");
    box.appendChild(element("h3", "small", "Sources"));
    var list = element("ol");
    citations.forEach(function (c) {
      var item = element("li");
      var link = element("a", "", c.filename + ", page " + c.page);
      link.href = c.url;
      link.target = "_blank";
      link.rel = "noopener";
      link.appendChild(element("span", "visually-hidden", " (opens in a new tab)"));
      item.appendChild(link);
      if (c.quote) {
        item.appendChild(document.createTextNode(" "));
        var quote = c.quote.length > 160 ? c.quote.slice(0, 157) + "..." : c.quote;
        item.appendChild(element("q", "small muted", quote));
      }
      list.appendChild(item);
    });
    box.appendChild(list);
    message.appendChild(box);
  }

  function initChat(form) {
    var log = document.getElementById(form.getAttribute("data-log"));
    var endpoint = form.getAttribute("data-chat-stream");
    var status = document.getElementById("chat-status");
    var failure = document.getElementById("chat-error");
    var button = form.querySelector('button[type="submit"]');
    var history = [];
    try { history = JSON.parse(form.elements.history.value || "[]"); } catch (err) { history = []; }

    form.addEventListener("submit", function (event) {
      var question = form.elements.question.value.trim();
      if (!question || !window.fetch || !window.TextDecoder) return; // plain form post
      event.preventDefault();
      failure.hidden = true;
      var asked = element("article", "msg user");
      asked.setAttribute("aria-label", "You asked");
      asked.appendChild(element("div", "", question));
      var answer = element("article", "msg assistant");
      answer.setAttribute("aria-label", "Answer");
      answer.setAttribute("data-state", "waiting");
      answer.setAttribute("data-pieces", "0");
      var text = element("div", "answer-text");
      answer.appendChild(text);
      log.append(asked, answer);
      log.setAttribute("aria-busy", "true");
      button.disabled = true;
      status.textContent = "Answering...";
      var pieces = 0;
      var meta = null;
      var body = new URLSearchParams();
      body.set("model", form.elements.model.value);
      body.set("question", question);
      body.set("history", JSON.stringify(history));

      function finish(message) {
        log.setAttribute("aria-busy", "false");
        button.disabled = false;
        status.textContent = message;
      }
      function fail(message) {
        answer.setAttribute("data-state", "failed");
        answer.classList.add("failed");
        text.textContent = message;
        failure.textContent = message;
        failure.hidden = false;
        finish("");
      }

      fetch(endpoint, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken(), "Accept": "text/event-stream" },
        body: body,
      }).then(function (response) {
        var type = response.headers.get("content-type") || "";
        if (type.indexOf("text/event-stream") < 0) {
          fail("The answer could not be fetched (" + response.status + "). Reload the page and try again.");
          return;
        }
        return readEvents(response, function (name, data) {
          if (name === "meta") {
            meta = data;
            answer.setAttribute("data-state", "streaming");
            if (data.refused) {
              answer.classList.add("refusal");
              var label = element("p", "refusal-label");
              label.appendChild(element("span", "badge warn", "Refused"));
              label.appendChild(document.createTextNode(" "));
              label.appendChild(element("span", "refusal-reason", data.refusal_text || ""));
              answer.insertBefore(label, text);
            }
          } else if (name === "piece") {
            pieces += 1;
            text.textContent += data;
            answer.setAttribute("data-pieces", String(pieces));
          } else if (name === "done") {
            text.textContent = data.text;
            showCitations(answer, (meta && meta.citations) || []);
            answer.appendChild(element("p", "small muted answer-meta",
              "v" + meta.version + " · retrieval confidence " + meta.confidence));
            answer.setAttribute("data-state", "done");
            history.push({ role: "user", content: question });
            history.push({ role: "assistant", content: data.text });
            form.elements.history.value = JSON.stringify(history);
            form.elements.question.value = "";
            finish(meta && meta.refused ? "Refused." : "Answered.");
          } else if (name === "error") {
            fail(data.message);
          }
        });
      }).catch(function () {
        fail("The connection was lost while answering. Try again.");
      });
    });
  }

  function scrollToCited(el) {
    var target = document.querySelector(el.getAttribute("data-scroll-to"));
    if (target) target.scrollIntoView({ block: "center" });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form.runtime-form").forEach(showKindFields);
    document.querySelectorAll("form[data-chat-stream]").forEach(initChat);
    document.querySelectorAll("[data-scroll-to]").forEach(scrollToCited);
  });
})();
