/* The web pages' only script: forms talk to the same JSON API as the apps.
 * A form with data-api="METHOD /path" is sent as JSON (or multipart when it
 * has a file); refusals are shown next to the field they concern, in the
 * page's language (the API's own message_zh / message_en for its code).
 * Cookie sessions send the CSRF token from the csrf cookie on every change.
 * No inline script anywhere (Content-Security-Policy: script-src 'self'). */
(function () {
  "use strict";
  var lang = document.documentElement.lang === "en" ? "en" : "zh";
  var body = document.body;
  var msg = JSON.parse(body.getAttribute("data-messages") || "{}");

  function cookie(name) {
    var found = document.cookie.split("; ").filter(function (c) {
      return c.indexOf(name + "=") === 0;
    })[0];
    return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
  }

  function text(problem) {
    if (!problem) return msg.failed;
    return (lang === "en" ? problem.message_en : problem.message_zh) || problem.detail || msg.failed;
  }

  function api(method, path, payload, extraHeaders) {
    var headers = {"Accept-Language": lang === "en" ? "en" : "zh-CN", "Accept": "application/json"};
    var csrf = cookie("csrf");
    if (csrf && method !== "GET") headers["X-CSRF-Token"] = csrf;
    var options = {method: method, headers: headers, credentials: "same-origin"};
    if (payload instanceof FormData) {
      options.body = payload;
    } else if (payload !== undefined && payload !== null) {
      headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(payload);
    }
    Object.keys(extraHeaders || {}).forEach(function (k) { headers[k] = extraHeaders[k]; });
    return fetch(path, options).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      var parse = type.indexOf("json") >= 0 ? response.json() : Promise.resolve(null);
      return parse.then(function (data) {
        return {ok: response.ok, status: response.status, data: data,
                requestId: response.headers.get("X-Request-Id")};
      });
    }, function () {
      return {ok: false, status: 0, data: null};
    });
  }

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $all(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }

  function show(el, on) { if (el) el.hidden = !on; }

  function clearErrors(form) {
    $all("[data-error-for]", form).forEach(function (el) { el.textContent = ""; });
    $all("[aria-invalid]", form).forEach(function (el) { el.removeAttribute("aria-invalid"); });
    var top = $(".form-error", form);
    if (top) { top.textContent = ""; top.hidden = true; }
  }

  function fieldError(form, name, message) {
    var slot = $('[data-error-for="' + name + '"]', form);
    var input = form.elements[name];
    if (!slot) return false;
    slot.textContent = message;
    if (input && input.setAttribute) {
      input.setAttribute("aria-invalid", "true");
    }
    return true;
  }

  // A refusal: next to the field whose data-codes name its code, or next to
  // the fields the 400 names, or at the top of the form.
  function showProblem(form, result) {
    var problem = result.data || {};
    var placed = false;
    var code = problem.code || "";
    $all("[data-codes]", form).forEach(function (input) {
      if (!placed && input.getAttribute("data-codes").split(",").indexOf(code) >= 0) {
        placed = fieldError(form, input.name, text(problem));
      }
    });
    if (!placed && problem.errors && typeof problem.errors === "object") {
      Object.keys(problem.errors).forEach(function (name) {
        if (fieldError(form, name, msg.check_field)) placed = true;
      });
      if (placed) {
        var topHint = $(".form-error", form);
        if (topHint) { topHint.textContent = text(problem); topHint.hidden = false; }
      }
    }
    if (!placed) {
      var top = $(".form-error", form);
      if (top) {
        var extra = "";
        if (problem.unmet) {
          extra = " " + problem.unmet.map(function (u) { return u.condition; }).join(", ");
        }
        if (problem.reason) extra += " (" + (msg["reason_" + problem.reason] || problem.reason) + ")";
        top.textContent = text(problem) + extra + (result.status >= 500 ? " [" + (result.requestId || "") + "]" : "");
        top.hidden = false;
      }
    }
    var first = $('[aria-invalid="true"]', form) || $(".form-error", form);
    if (first && first.focus) { first.setAttribute("tabindex", first.getAttribute("tabindex") || "-1"); first.focus(); }
  }

  function formPayload(form) {
    if (form.querySelector('input[type="file"]')) return new FormData(form);
    var out = {};
    $all("input, select, textarea", form).forEach(function (el) {
      if (!el.name || el.disabled || el.getAttribute("data-skip") !== null) return;
      var value;
      if (el.type === "checkbox") value = el.checked;
      else if (el.type === "radio") { if (!el.checked) return; value = el.value; }
      else value = el.value;
      if (value === "" && el.getAttribute("data-optional") !== null) return;
      if (el.getAttribute("data-type") === "int" && value !== "") value = parseInt(value, 10);
      if (el.getAttribute("data-type") === "bool") value = value === "true";
      var path = el.name.split(".");
      if (el.getAttribute("data-list") !== null) {
        out[path[0]] = out[path[0]] || [];
        if (path.length === 1) out[path[0]].push(value);
        else {
          var index = parseInt(path[1], 10);
          out[path[0]][index] = out[path[0]][index] || {};
          out[path[0]][index][path[2]] = value;
        }
        return;
      }
      out[el.name] = value;
    });
    return out;
  }

  function fill(root, data) {
    $all("[data-field]", root).forEach(function (el) {
      var value = el.getAttribute("data-field").split(".").reduce(function (v, k) {
        return v === null || v === undefined ? v : v[k];
      }, data);
      if (value === null || value === undefined || value === "") value = el.getAttribute("data-empty") || "—";
      if (Array.isArray(value)) value = value.join(", ") || (el.getAttribute("data-empty") || "—");
      if (typeof value === "boolean") value = value ? msg.yes : msg.no;
      var mapped = msg["value_" + value];
      el.textContent = mapped || value;
    });
  }

  // -- countdown on code buttons (from resend_after / retry_after) ---------
  function countdown(button, seconds) {
    var label = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", label);
    button.disabled = true;
    var left = Math.max(1, Math.ceil(seconds));
    function tick() {
      if (left <= 0) { button.disabled = false; button.textContent = label; return; }
      button.textContent = msg.resend_in.replace("{n}", left);
      left -= 1;
      setTimeout(tick, 1000);
    }
    tick();
  }

  function wireCodeButtons(root) {
    $all("button[data-code-purpose]", root).forEach(function (button) {
      button.addEventListener("click", function () {
        var form = button.form;
        var field = form.elements[button.getAttribute("data-code-field")];
        var status = $('[data-status-for="' + button.getAttribute("data-code-field") + '"]', form);
        clearErrors(form);
        var destination = field ? field.value.trim() : "";
        var channel = destination.indexOf("@") >= 0 ? "email" : "sms";
        var send = button.getAttribute("data-code-api") === "reset"
          ? api("POST", "/api/v1/password-resets/codes", {login: form.elements.login.value, method: form.elements.method.value})
          : api("POST", "/api/v1/codes", {channel: channel, destination: destination, purpose: button.getAttribute("data-code-purpose")});
        send.then(function (result) {
          if (result.ok) {
            if (status) status.textContent = msg.code_sent + " " + (result.data.destination_masked || result.data.target || "");
            countdown(button, result.data.resend_after || 60);
          } else {
            if (result.data && result.data.retry_after) countdown(button, result.data.retry_after);
            showProblem(form, result);
          }
        });
      });
    });
  }

  // -- forms ------------------------------------------------------------------
  var handlers = {};

  function wireForms(root) {
    $all("form[data-api]", root).forEach(function (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        clearErrors(form);
        var spec = form.getAttribute("data-api").split(" ");
        var path = spec[1].replace(/\{(\w+)\}/g, function (_, name) {
          var input = form.elements[name];
          return encodeURIComponent((input && input.value) || form.getAttribute("data-" + name) ||
                                    body.getAttribute("data-" + name) || "");
        });
        var payload = spec[0] === "GET" ? null : formPayload(form);
        var before = handlers[form.getAttribute("data-before")];
        if (before) payload = before(form, payload);
        var headers = {};
        var recovery = sessionStorage.getItem("recovery_token");
        if (form.getAttribute("data-recovery") !== null && recovery) headers["X-Recovery-Token"] = recovery;
        var submit = $('button[type="submit"]', form);
        if (submit) submit.disabled = true;
        api(spec[0], path, payload, headers).then(function (result) {
          if (submit) submit.disabled = false;
          if (result.status === 401 && form.getAttribute("data-public") === null) {
            location.href = "/login?next=" + encodeURIComponent(location.pathname);
            return;
          }
          var after = handlers[form.getAttribute("data-then")];
          if (result.ok) {
            var done = $(".form-done", form);
            if (done) { done.hidden = false; done.focus && done.focus(); }
            if (after) after(form, result.data, result);
          } else if (!(after && after.handlesErrors && after(form, result.data, result))) {
            showProblem(form, result);
          }
        });
      });
    });
  }

  function load(path, root, headers) {
    return api("GET", path, null, headers).then(function (result) {
      if (result.status === 401) {
        location.href = "/login?next=" + encodeURIComponent(location.pathname);
        return null;
      }
      if (!result.ok) {
        var top = $(".page-error", root || document);
        if (top) { top.textContent = text(result.data); top.hidden = false; }
        return null;
      }
      if (root) fill(root, result.data);
      return result.data;
    });
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (child) { node.appendChild(child); });
    return node;
  }

  // -- page behaviours ------------------------------------------------------------
  handlers.loggedIn = function () {
    // Only a page of this site: ?next= parsed as the browser will resolve it
    // (so "/\\evil.example" or "/\t/evil" cannot leave), never a string test.
    var wanted = new URLSearchParams(location.search).get("next") || "/account";
    var target = null;
    try { target = new URL(wanted, location.origin); } catch (e) { target = null; }
    if (!target || target.origin !== location.origin) target = new URL("/account", location.origin);
    location.href = target.pathname + target.search + target.hash;
  };
  handlers.loggedIn.handlesErrors = false;

  handlers.login = function (form, data, result) {
    if (result.ok) { handlers.loggedIn(); return true; }
    if (result.status === 403 && data && data.code === "device_verification_required") {
      var step = $("#device-code");
      show(step, true);
      $("#device-phone").textContent = data.phone_masked || "";
      form.elements.code.disabled = false;
      form.elements.code.focus();
      var resend = $("#device-resend");
      if (data.resend_after) countdown(resend, data.resend_after);
      return true;
    }
    return false;
  };
  handlers.login.handlesErrors = true;
  handlers.addWebSession = function (form, payload) {
    payload.web_session = true;
    if (!payload.code) delete payload.code;
    return payload;
  };

  handlers.registered = function (form, data) {
    $("#passport-id").textContent = data.passport_id;
    $("#account-status").textContent = msg["value_" + data.status] || data.status;
    show($("#registered"), true);
    show(form, false);
    $("#registered").focus();
  };

  handlers.registerConflict = function (form, data, result) {
    if (result.ok) { handlers.registered(form, data); return true; }
    if (data && data.code === "id_already_registered") {
      show($("#duplicate-choice"), true);
    }
    return false;
  };
  handlers.registerConflict.handlesErrors = true;

  handlers.reload = function () { location.reload(); };

  handlers.showResult = function (form, data) {
    var target = $(form.getAttribute("data-result"));
    if (target) { fill(target, data); show(target, true); }
  };

  handlers.loginNames = function (form, data) {
    var list = $("#login-names");
    list.textContent = "";
    data.login_names.forEach(function (name) {
      list.appendChild(el("li", {text: (msg["kind_" + name.kind] || name.kind) + ": " + name.value}));
    });
    show($("#login-names-box"), true);
  };
  handlers.loginNames.handlesErrors = false;

  function loadCaptcha() {
    var img = $("#captcha-image");
    if (!img) return;
    api("POST", "/api/v1/captchas", {}).then(function (result) {
      if (!result.ok) return;
      img.src = "data:image/png;base64," + result.data.image_png_base64;
      $("#captcha-id").value = result.data.captcha_id;
    });
  }

  handlers.captchaFailed = function (form, data, result) {
    if (!result.ok) { loadCaptcha(); return false; }
    handlers.loginNames(form, data);
    return true;
  };
  handlers.captchaFailed.handlesErrors = true;

  // Password reset: the methods of the login, then the proof.
  handlers.resetMethods = function (form, data) {
    var box = $("#reset-methods");
    box.textContent = "";
    data.methods.forEach(function (m, i) {
      var id = "method-" + m.method;
      var input = el("input", {type: "radio", name: "method", value: m.method, id: id});
      if (i === 0) input.checked = true;
      var label = el("label", {"for": id, text: (msg["method_" + m.method] || m.method) + (m.target ? " " + m.target : "")});
      box.appendChild(el("div", {"class": "choice"}, [input, label]));
      if (m.questions) {
        m.questions.forEach(function (q, j) {
          $("#question-" + j).textContent = q;
        });
      }
    });
    if (!data.methods.length) show($("#no-method"), true);
    var reset = $("#reset-form");
    reset.elements.login.value = form.elements.login.value;
    show($("#reset-step-2"), data.methods.length > 0);
    syncMethod();
  };
  function syncMethod() {
    var reset = $("#reset-form");
    if (!reset) return;
    var chosen = $('input[name="method"]:checked', reset);
    var method = chosen ? chosen.value : "sms";
    show($("#by-code"), method !== "questions");
    show($("#by-questions"), method === "questions");
    $all("#by-code input", reset).forEach(function (i) { i.disabled = method === "questions"; });
    $all("#by-questions input", reset).forEach(function (i) { i.disabled = method !== "questions"; });
  }
  document.addEventListener("change", function (event) {
    if (event.target.name === "method") syncMethod();
  });
  handlers.resetDone = function () {
    show($("#reset-done"), true);
    show($("#reset-step-2"), false);
    $("#reset-done").focus();
  };

  // Forgot phone: the flow's id and token live in this tab only.
  handlers.splitNumbers = function (form, payload) {
    payload.student_numbers = (payload.student_numbers || []).join(" ").split(/[\s,，]+/).filter(Boolean);
    return payload;
  };
  handlers.loggedOut = function () { location.href = "/"; };

  handlers.recoveryStarted = function (form, data) {
    body.setAttribute("data-recovery_id", data.recovery_id);
    sessionStorage.setItem("recovery_id", data.recovery_id);
    sessionStorage.setItem("recovery_token", data.recovery_token);
    $("#old-phone-hint").textContent = data.old_phone_hint;
    show($("#fp-step-1"), false);
    show($("#fp-step-2"), true);
    $("#fp-step-2 form").setAttribute("data-recovery_id", data.recovery_id);
    $("#fp-step-2 h2").focus();
  };
  handlers.shareReady = function (form, data) {
    sessionStorage.setItem("share_url", data.share_url);
    showShare(data.share_url);
    show($("#fp-step-2"), false);
    show($("#fp-step-3"), true);
    progress();
  };
  function showShare(url) {
    $("#share-url").value = url;
    $("#share-qr").src = "/web/qr.svg?data=" + encodeURIComponent(url);
  }
  function progress() {
    var id = sessionStorage.getItem("recovery_id");
    if (!id) return;
    load("/api/v1/phone-recoveries/" + id, $("#fp-progress"),
         {"X-Recovery-Token": sessionStorage.getItem("recovery_token")}).then(function (data) {
      if (!data) return;
      body.setAttribute("data-recovery_id", id);
      if (data.status === "awaiting_vouches" || data.status === "matched") setTimeout(progress, 3000);
      if (data.status === "completed") show($("#fp-completed"), true);
    });
  }
  var copy = $("#copy-share");
  if (copy) {
    copy.addEventListener("click", function () {
      var input = $("#share-url");
      input.select();
      (navigator.clipboard ? navigator.clipboard.writeText(input.value) : Promise.reject())
        .catch(function () { document.execCommand("copy"); })
        .then(function () { $("#copied").textContent = msg.copied; });
    });
  }
  handlers.recoveryCancelled = function () {
    sessionStorage.removeItem("recovery_id");
    sessionStorage.removeItem("recovery_token");
    location.reload();
  };

  // The vouch page.
  handlers.vouched = function (form, data) {
    fill($("#vouch-box"), data);
    show($("#vouch-done"), true);
    show(form, false);
    $("#vouch-done").focus();
  };

  // Inbox and queues: lists drawn from the API.
  function drawInbox() {
    var list = $("#inbox-list");
    if (!list) return;
    load("/api/v1/me/inbox?limit=50").then(function (data) {
      if (!data) return;
      $("#unread").textContent = data.unread;
      $("#to-answer").textContent = data.to_answer;
      list.textContent = "";
      if (!data.items.length) list.appendChild(el("li", {text: msg.empty}));
      data.items.forEach(function (m) {
        var p = m.params || {};
        var who = p.requester_name ? p.requester_name + (p.requester_class ? "（" + p.requester_class + "）" : "") : "";
        var line = (msg["kind_" + m.kind] || m.kind) + (who ? " — " + who : "");
        if (m.kind === "review_outcome") line += " — " + (msg["value_" + p.status] || p.status) + (p.reason ? "：" + p.reason : "");
        if (m.kind === "assistance_outcome") line += " — " + (p.approved ? msg.approved : msg.declined);
        if (m.kind === "duplicate_move") line += " — " + (msg["value_" + p.state] || p.state) + ((p.effective_at || p.at) ? " · " + (p.effective_at || p.at).slice(0, 16).replace("T", " ") : "");
        if (m.kind === "correction_outcome") line += " — " + (msg["value_" + p.status] || p.status) + (p.code ? "（" + (msg["code_" + p.code] || p.code) + "）" : "");
        var item = el("li", {"class": m.read ? "read" : "unread", "data-message": m.message_id}, [el("p", {text: line})]);
        if (m.needs_answer) {
          [true, false].forEach(function (approve) {
            var b = el("button", {type: "button", "class": approve ? "primary" : "", text: approve ? msg.answer_yes : msg.answer_no});
            b.addEventListener("click", function () {
              api("POST", "/api/v1/me/inbox/" + m.message_id + "/answer", {approve: approve}).then(function (result) {
                var note = $(".item-error", item);
                if (result.ok) drawInbox();
                else { note.textContent = text(result.data) + (result.data && result.data.reason ? " (" + (msg["reason_" + result.data.reason] || result.data.reason) + ")" : ""); note.hidden = false; }
              });
            });
            item.appendChild(b);
          });
        } else if (!m.read) {
          var r = el("button", {type: "button", text: msg.mark_read});
          r.addEventListener("click", function () {
            api("POST", "/api/v1/me/inbox/" + m.message_id + "/read", {}).then(drawInbox);
          });
          item.appendChild(r);
        }
        item.appendChild(el("p", {"class": "item-error error", role: "alert", hidden: "hidden"}));
        list.appendChild(item);
      });
    });
  }

  function drawUnmatched() {
    var list = $("#unmatched-list");
    if (!list) return;
    var code = body.getAttribute("data-school");
    load("/api/v1/admin/schools/" + code + "/unmatched?limit=100").then(function (data) {
      if (!data) return;
      list.textContent = "";
      if (!data.items.length) list.appendChild(el("tr", {}, [el("td", {colspan: "5", text: msg.empty})]));
      data.items.forEach(function (row) {
        var refresh = el("button", {type: "button", text: msg.refresh});
        refresh.addEventListener("click", function () {
          api("POST", "/api/v1/admin/schools/" + code + "/students/" + row.account_id + "/refresh", {}).then(function (result) {
            refresh.textContent = result.ok ? (msg["value_" + result.data.status] || result.data.status) : text(result.data);
            drawUnmatched();
          });
        });
        var link = el("button", {type: "button", text: msg.link});
        link.addEventListener("click", function () {
          var form = $("#link-form");
          form.elements.account_id.value = row.account_id;
          form.elements.student_number.value = row.student_number || "";
          form.elements.reason.focus();
        });
        list.appendChild(el("tr", {"data-account": row.account_id}, [
          el("td", {text: row.student_number || ""}),
          el("td", {text: msg["value_" + row.status] || row.status}),
          el("td", {text: (msg["code_" + row.code] || row.code || "") + (row.mismatches && row.mismatches.length ? "：" + row.mismatches.join(", ") : "")}),
          el("td", {text: row.correction_note || ""}),
          el("td", {}, [refresh, link])
        ]));
      });
    });
  }
  handlers.linked = function () { drawUnmatched(); };

  function drawReviews() {
    var list = $("#review-list");
    if (!list) return;
    load("/api/v1/admin/reviews?status=open&limit=50").then(function (data) {
      if (!data) return;
      list.textContent = "";
      if (!data.items.length) list.appendChild(el("li", {text: msg.empty}));
      data.items.forEach(function (review) {
        var item = el("li", {"data-review": review.review_id}, [
          el("p", {text: (msg["kind_" + review.kind] || review.kind) + " · " + review.created_at.slice(0, 16).replace("T", " ")})
        ]);
        if (review.has_photo) {
          item.appendChild(el("img", {src: "/api/v1/admin/reviews/" + review.review_id + "/photo", alt: msg.photo_alt, "class": "review-photo"}));
        }
        var reasonId = "reason-" + review.review_id;
        var reason = el("input", {id: reasonId, name: "reason", required: "required", minlength: "2"});
        var error = el("p", {"class": "error", role: "alert"});
        item.appendChild(el("label", {"for": reasonId, text: msg.reason}));
        item.appendChild(reason);
        [true, false].forEach(function (approve) {
          var b = el("button", {type: "button", "class": approve ? "primary" : "", text: approve ? msg.approve : msg.reject});
          b.addEventListener("click", function () {
            api("POST", "/api/v1/admin/reviews/" + review.review_id + "/decision", {approve: approve, reason: reason.value}).then(function (result) {
              if (result.ok) drawReviews(); else error.textContent = text(result.data);
            });
          });
          item.appendChild(b);
        });
        item.appendChild(error);
        list.appendChild(item);
      });
    });
  }

  // -- my account ---------------------------------------------------------------------
  function drawAccount() {
    var root = $("#account");
    if (!root) return;
    load("/api/v1/me", root).then(function (me) {
      if (!me) return;
      show($("#guardian-box"), me.guardian.required);
    });
    load("/api/v1/me/auth-info/permissions").then(function (data) {
      if (!data) return;
      var list = $("#permissions");
      list.textContent = "";
      Object.keys(data.fields).forEach(function (name) {
        var p = data.fields[name];
        var line = (msg["field_" + name] || name) + "：" + (p.changeable ? msg.changeable : msg.locked);
        if (!p.changeable) {
          line += "（" + (msg["lock_" + p.reason] || p.reason);
          if (p.unlocks_at) line += "，" + msg.unlocks_at + " " + p.unlocks_at.slice(0, 16).replace("T", " ");
          line += "）";
        }
        list.appendChild(el("li", {"data-permission": name, text: line}));
      });
    });
    load("/api/v1/me/deactivation").then(function (data) {
      if (!data) return;
      var list = $("#unmet");
      list.textContent = "";
      data.unmet.forEach(function (u) {
        list.appendChild(el("li", {text: msg["unmet_" + u.condition] || u.condition}));
      });
      show($("#deactivate-form"), data.eligible);
      show($("#not-eligible"), !data.eligible);
    });
  }

  function drawRegistry() {
    var box = $("#registry-status");
    if (!box) return;
    api("GET", "/api/v1/me/registry-verification").then(function (result) {
      if (result.status === 401) { location.href = "/login?next=/registry"; return; }
      if (!result.ok) return;
      var data = result.data;
      fill(box, data);
      $("#registry-code").textContent = data.code ? (msg["code_" + data.code] || data.code) : "—";
      show(box, true);
      show($("#correction-form"), data.status === "failed");
    });
  }
  handlers.registrySubmitted = function () { drawRegistry(); };

  function drawDuplicate() {
    var box = $("#duplicate-status");
    if (!box) return;
    load("/api/v1/me/duplicate-id", box).then(function (data) {
      if (!data) return;
      var list = $("#reviews");
      list.textContent = "";
      data.reviews.forEach(function (r) {
        list.appendChild(el("li", {text: (msg["value_" + r.status] || r.status) + (r.reason ? "：" + r.reason : "") +
          " — " + (lang === "en" ? r.service_level.promise_en : r.service_level.promise_zh) + " (" + r.service_level.answer_by + ")"}));
      });
    });
  }
  handlers.duplicateChanged = function () { drawDuplicate(); };

  function drawVouch() {
    var box = $("#vouch-box");
    if (!box) return;
    var token = body.getAttribute("data-share_token");
    load("/api/v1/vouches/" + token, box).then(function (data) {
      if (!data) return;
      show(box, true);
      var form = $("#vouch-form");
      show(form, !data.is_requester && !data.already_vouched && data.status === "awaiting_vouches");
      show($("#vouch-done"), data.already_vouched);
    });
  }

  var lo = $("#logout");
  if (lo) {
    lo.addEventListener("click", function () {
      api("DELETE", "/api/v1/sessions/current").then(function () { location.href = "/"; });
    });
  }

  wireForms(document);
  wireCodeButtons(document);
  loadCaptcha();
  var again = $("#captcha-refresh");
  if (again) again.addEventListener("click", loadCaptcha);
  drawInbox();
  drawUnmatched();
  drawReviews();
  drawAccount();
  drawRegistry();
  drawDuplicate();
  drawVouch();
  syncMethod();
  if ($("#fp-step-3") && sessionStorage.getItem("recovery_id") && body.getAttribute("data-resume") !== null) {
    show($("#fp-step-1"), false);
    show($("#fp-step-3"), true);
    if (sessionStorage.getItem("share_url")) showShare(sessionStorage.getItem("share_url"));
    progress();
  }
})();
