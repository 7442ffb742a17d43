// The conversation page's message box: the reply streams into the page as it arrives
// (server-sent events from the API). Without this script, or without streaming fetch, the
// form posts as usual and the page shows the stored reply.
(function () {
  "use strict";
  if (window.xagentChat) return;
  window.xagentChat = true;
  if (!window.fetch || !window.ReadableStream || !window.TextDecoder) return;

  function money(micros) {
    var d = micros / 1e6;
    return d >= 0.01 ? d.toFixed(2) : d.toFixed(6).replace(/0+$/, "").replace(/\.$/, ".0");
  }

  function item(role, author, text) {
    var li = document.createElement("li");
    li.className = "message message-" + role;
    var meta = document.createElement("p");
    meta.className = "message-meta";
    var who = document.createElement("strong");
    who.textContent = role;
    meta.appendChild(who);
    meta.appendChild(document.createTextNode(" · " + author));
    var body = document.createElement("div");
    body.className = "message-body";
    body.textContent = text;
    li.appendChild(meta);
    li.appendChild(body);
    return li;
  }

  function fieldError(form, text) {
    var area = form.querySelector("#message-content");
    var p = form.querySelector("#message-content-error");
    if (!text) {
      if (p) p.remove();
      area.removeAttribute("aria-invalid");
      area.removeAttribute("aria-describedby");
      return;
    }
    if (!p) {
      p = document.createElement("p");
      p.className = "field-error";
      p.id = "message-content-error";
      area.insertAdjacentElement("afterend", p);
    }
    p.textContent = text;
    area.setAttribute("aria-invalid", "true");
    area.setAttribute("aria-describedby", "message-content-error");
  }

  // Calls `on(event, data)` for each server-sent event of the response body.
  function readEvents(res, on) {
    var reader = res.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    function pump() {
      return reader.read().then(function (r) {
        if (r.done) return;
        buffer += decoder.decode(r.value, { stream: true });
        var end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          var frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          var name = "message", data = "";
          frame.split("\n").forEach(function (line) {
            if (line.indexOf("event:") === 0) name = line.slice(6).trim();
            else if (line.indexOf("data:") === 0) data += line.slice(5).trim();
          });
          var parsed = null;
          try { parsed = JSON.parse(data); } catch (e) { parsed = null; }
          on(name, parsed);
        }
        return pump();
      });
    }
    return pump();
  }

  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (!form || form.id !== "add-message" || !form.dataset.stream) return;
    var area = form.querySelector("#message-content");
    var text = area.value.trim();
    // An empty message goes to the server, which says what is wrong under the box.
    if (!text) return;
    e.preventDefault();
    var list = document.getElementById("messages");
    var empty = document.getElementById("messages-empty");
    var button = form.querySelector("#add-message-btn");
    var status = form.querySelector("#chat-status");
    var csrf = form.querySelector("input[name=csrf_token]").value;
    var question = item("user", "you", text);
    var answer = item("assistant", "agent", "");
    answer.classList.add("message-streaming");
    list.appendChild(question);
    list.appendChild(answer);
    if (empty) empty.hidden = true;
    button.disabled = true;
    status.textContent = "Answering…";
    fieldError(form, "");
    var body = answer.querySelector(".message-body");
    var failed = false;
    fetch(form.dataset.stream, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", "accept": "text/event-stream", "x-csrf-token": csrf },
      body: JSON.stringify({ content: text })
    }).then(function (res) {
      if (!res.ok) {
        return res.json().catch(function () { return {}; }).then(function (j) {
          throw new Error((j.error && j.error.message) || "The message could not be sent (" + res.status + ").");
        });
      }
      area.value = "";
      return readEvents(res, function (name, data) {
        if (name === "delta" && data) {
          body.textContent += data.content;
        } else if (name === "done" && data) {
          body.textContent = data.content;
          var meta = answer.querySelector(".message-meta");
          var cost = document.createElement("span");
          cost.className = "message-cost";
          cost.textContent = (data.model || "") + " · " + data.input_tokens + " in / " +
            data.output_tokens + " out · $" + money(data.cost_micros);
          meta.appendChild(document.createTextNode(" · "));
          meta.appendChild(cost);
          answer.classList.remove("message-streaming");
          answer.classList.add("message-done");
          if (data.citations && data.citations.length) {
            // The page names and links the passages' documents.
            window.location.reload();
          }
        } else if (name === "error") {
          failed = true;
          answer.classList.add("message-failed");
          body.textContent = (data && data.message) || "The reply could not be stored.";
        }
      });
    }).then(function () {
      status.textContent = failed ? "The reply failed." : "";
    }).catch(function (err) {
      question.remove();
      answer.remove();
      if (empty && !list.children.length) empty.hidden = false;
      status.textContent = "";
      fieldError(form, err.message);
    }).then(function () {
      button.disabled = false;
    });
  }, true);
})();
