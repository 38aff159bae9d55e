/* durable-sessions session viewer: read-only views over the JSON API.
 *
 * The API key comes from the URL fragment (#key=...&session=...) or the form, is kept in
 * sessionStorage (this tab only) and is sent as "Authorization: Bearer <key>"; it is removed
 * from the address bar at once and never put in a query string. Data is only ever rendered as
 * text (textContent / text nodes), never as HTML. When a view is rendered, <body data-ready>
 * is "1" (or "error"); while it loads it is "0". An open session then follows its live events
 * (live.js): new turns, streamed turns as they are written, new branches, status changes.
 */
(function () {
  "use strict";

  const KEY_STORAGE = "durable-sessions-viewer-key";
  const PAGE_SIZE = 200;

  let memoryKey = null; // when sessionStorage is not available
  let generation = 0; // bumps on every navigation: late answers of an old view are dropped

  const $ = (id) => document.getElementById(id);

  /* ---------- the fragment and the key ---------- */

  function parseFragment() {
    // Not URLSearchParams: it turns "+" into a space, and keys may contain "+".
    const params = new Map();
    for (const part of location.hash.replace(/^#/, "").split("&")) {
      if (!part) continue;
      const eq = part.indexOf("=");
      const name = eq < 0 ? part : part.slice(0, eq);
      const value = eq < 0 ? "" : part.slice(eq + 1);
      try {
        params.set(decodeURIComponent(name), decodeURIComponent(value));
      } catch (_err) {
        // a malformed escape: ignore that entry
      }
    }
    return params;
  }

  function fragmentOf(params) {
    const parts = [];
    for (const [name, value] of params) {
      parts.push(encodeURIComponent(name) + "=" + encodeURIComponent(value));
    }
    return parts.length ? "#" + parts.join("&") : "";
  }

  function getKey() {
    try {
      const stored = sessionStorage.getItem(KEY_STORAGE);
      if (stored) return stored;
    } catch (_err) {
      // storage disabled
    }
    return memoryKey;
  }

  function setKey(key) {
    memoryKey = key || null;
    try {
      if (key) sessionStorage.setItem(KEY_STORAGE, key);
      else sessionStorage.removeItem(KEY_STORAGE);
    } catch (_err) {
      // storage disabled: the key lives in memory only
    }
  }

  /** Moves a key given in the fragment into storage and out of the address bar. */
  function takeKeyFromFragment() {
    const params = parseFragment();
    if (!params.has("key")) return;
    setKey(params.get("key"));
    params.delete("key");
    history.replaceState(null, "", location.pathname + location.search + fragmentOf(params));
  }

  function sessionHref(sessionId) {
    return "#session=" + encodeURIComponent(sessionId);
  }

  /* ---------- the API ---------- */

  class ApiFailure extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(path) {
    const key = getKey();
    if (!key) throw new ApiFailure(401, "an API key is required");
    const response = await fetch(new URL(path, document.baseURI), {
      headers: { Authorization: "Bearer " + key, Accept: "application/json" },
      credentials: "omit",
      cache: "no-store",
    });
    let body = null;
    try {
      body = await response.json();
    } catch (_err) {
      body = null;
    }
    if (!response.ok) {
      const message =
        body && body.error && typeof body.error.message === "string"
          ? body.error.message
          : "HTTP " + response.status;
      throw new ApiFailure(response.status, message);
    }
    return body;
  }

  const enc = encodeURIComponent;

  /* ---------- DOM helpers (text only) ---------- */

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function show(id, visible) {
    $(id).hidden = !visible;
  }

  function json(value) {
    return JSON.stringify(value === undefined ? null : value, null, 2);
  }

  function isEmpty(value) {
    return value === null || value === undefined || (typeof value === "object" && Object.keys(value).length === 0);
  }

  function timeCell(iso, field) {
    if (!iso) return el("td", { class: "muted", "data-field": field }, "—");
    return el("td", { class: "time", "data-field": field }, el("time", { datetime: iso }, iso));
  }

  function optional(value) {
    return value === null || value === undefined ? "—" : String(value);
  }

  function statusBadge(status) {
    return el("span", { class: "badge status-" + status, "data-status": status }, status);
  }

  function setStatus(text) {
    $("status").textContent = text || "";
  }

  function setError(text) {
    $("error").textContent = text || "";
    show("error", Boolean(text));
  }

  function ready(state) {
    document.body.dataset.ready = state;
  }

  function hideViews() {
    for (const id of ["key-form", "sessions-view", "session-view", "load-more"]) show(id, false);
  }

  /* ---------- views ---------- */

  function showKeyForm(message) {
    hideViews();
    show("forget-key", false);
    setStatus("");
    setError(message || "");
    show("key-form", true);
    $("key-input").value = "";
    $("key-input").focus();
    ready("1");
  }

  async function showSessions(token) {
    setStatus("Loading sessions…");
    const sessions = await api("sessions");
    if (token !== generation) return;
    sessions.sort((a, b) => (a.updated_at < b.updated_at ? 1 : a.updated_at > b.updated_at ? -1 : 0));
    const body = $("sessions-body");
    clear(body);
    for (const s of sessions) {
      body.append(
        el(
          "tr",
          { class: "session-row", "data-session-id": s.session_id, "data-status": s.status },
          el("td", {}, el("a", { href: sessionHref(s.session_id), class: "session-link" }, el("code", {}, s.session_id))),
          el("td", { "data-field": "status" }, statusBadge(s.status)),
          el("td", { class: "num", "data-field": "turn_count" }, s.turn_count),
          el("td", { "data-field": "branch" }, s.branch_name ? s.branch_name : s.parent_session_id ? "(branch)" : "—"),
          timeCell(s.created_at, "created_at"),
          timeCell(s.updated_at, "updated_at"),
        ),
      );
    }
    show("sessions-empty", sessions.length === 0);
    show("sessions-view", true);
    setStatus(sessions.length + (sessions.length === 1 ? " session" : " sessions"));
  }

  const HEADER_FIELDS = [
    ["session_id", "Session id"],
    ["user_id", "User"],
    ["status", "Status"],
    ["turn_count", "Turns"],
    ["total_tokens", "Tokens"],
    ["total_cost", "Cost"],
    ["created_at", "Created"],
    ["updated_at", "Updated"],
    ["expires_at", "Expires"],
    ["branch_name", "Branch name"],
    ["parent_session_id", "Parent session"],
    ["fork_seq", "Fork at seq"],
    ["generation", "Generation"],
    ["last_checkpoint_id", "Last checkpoint"],
  ];

  function renderHeader(state) {
    $("session-title").textContent = state.session_id;
    const dl = $("session-header");
    clear(dl);
    for (const [field, label] of HEADER_FIELDS) {
      const value = state[field];
      let content;
      if (field === "status") content = statusBadge(value);
      else if (field === "parent_session_id" && value) content = el("a", { href: sessionHref(value) }, el("code", {}, value));
      else content = optional(value);
      dl.append(el("dt", {}, label), el("dd", { "data-field": field }, content));
    }
    $("session-metadata").textContent = json(state.metadata || {});
  }

  function turnRow(turn) {
    return el(
      "tr",
      { class: "turn", "data-turn-id": turn.turn_id, "data-seq": turn.seq, "data-role": turn.role },
      el("td", { class: "num", "data-field": "seq" }, optional(turn.seq)),
      el("td", { "data-field": "role" }, el("span", { class: "badge role role-" + turn.role }, turn.role)),
      el("td", { "data-field": "content", class: "content" }, el("div", { class: "content-text" }, turn.content)),
      el("td", { "data-field": "turn_id" }, el("code", {}, turn.turn_id)),
      timeCell(turn.timestamp, "timestamp"),
      el("td", { class: "num", "data-field": "tokens" }, optional(turn.tokens)),
      el("td", { class: "num", "data-field": "cost" }, optional(turn.cost)),
      el("td", { "data-field": "agent" }, optional(turn.agent)),
      el(
        "td",
        { "data-field": "metadata" },
        isEmpty(turn.metadata) ? el("span", { class: "muted" }, "{}") : el("pre", { class: "json metadata" }, json(turn.metadata)),
      ),
    );
  }

  function appendTurns(turns) {
    const body = $("transcript-body");
    for (const turn of turns) body.append(turnRow(turn));
    const shown = body.childElementCount;
    show("transcript-empty", shown === 0);
    return shown;
  }

  function renderCheckpoints(checkpoints) {
    const body = $("checkpoints-body");
    clear(body);
    for (const cp of checkpoints) {
      body.append(
        el(
          "tr",
          { class: "checkpoint", "data-checkpoint-id": cp.checkpoint_id },
          el("td", {}, el("code", { title: cp.checkpoint_id }, cp.checkpoint_id.slice(0, 12))),
          el("td", { "data-field": "reason" }, cp.reason),
          el("td", { class: "num", "data-field": "turn_count" }, cp.turn_count),
          el("td", { class: "num", "data-field": "generation" }, cp.generation),
          el("td", {}, statusBadge(cp.status)),
          timeCell(cp.created_at, "created_at"),
        ),
      );
    }
    show("checkpoints", checkpoints.length > 0);
    show("checkpoints-empty", checkpoints.length === 0);
  }

  function treeNode(node, currentId, ancestors) {
    const s = node.session;
    const isCurrent = s.session_id === currentId;
    const classes = ["node"];
    if (isCurrent) classes.push("current");
    if (ancestors.has(s.session_id)) classes.push("ancestor");
    const label = el(
      "a",
      { href: sessionHref(s.session_id), class: "node-link", "aria-current": isCurrent ? "page" : null },
      el("span", { class: "branch-name" }, s.branch_name || "(root)"),
      s.fork_seq === null || s.fork_seq === undefined ? null : el("span", { class: "fork" }, " @" + s.fork_seq),
      " ",
      el("code", { class: "node-id" }, s.session_id),
    );
    const li = el(
      "li",
      { class: classes.join(" "), "data-session-id": s.session_id, "data-branch-name": s.branch_name || "" },
      label,
      " ",
      statusBadge(s.status),
      el("span", { class: "muted" }, " " + s.turn_count + " turns"),
    );
    const children = node.children || [];
    if (children.length) {
      li.append(el("ul", {}, ...children.map((c) => treeNode(c, currentId, ancestors))));
    }
    return li;
  }

  function renderTree(lineage, currentId) {
    const nav = $("branch-tree");
    clear(nav);
    const ancestors = new Set(lineage.ancestors);
    nav.dataset.rootSessionId = lineage.root.session.session_id;
    nav.append(el("ul", { class: "tree" }, treeNode(lineage.root, currentId, ancestors)));
  }

  async function loadMoreTurns(sessionId, token) {
    const offset = $("transcript-body").childElementCount;
    const turns = await api("sessions/" + enc(sessionId) + "/turns?offset=" + offset + "&limit=" + PAGE_SIZE);
    if (token !== generation) return;
    finishTurns(turns);
  }

  function finishTurns(turns) {
    const shown = appendTurns(turns);
    show("load-more", turns.length === PAGE_SIZE);
    $("transcript-count").textContent = "(" + shown + " shown)";
  }

  async function showSession(sessionId, token) {
    setStatus("Loading session…");
    const base = "sessions/" + enc(sessionId);
    const [state, turns, checkpoints, lineage] = await Promise.all([
      api(base),
      api(base + "/turns?offset=0&limit=" + PAGE_SIZE),
      api(base + "/checkpoints"),
      api(base + "/lineage"),
    ]);
    if (token !== generation) return;
    const view = $("session-view");
    view.dataset.sessionId = sessionId;
    renderHeader(state);
    clear($("transcript-body"));
    finishTurns(turns);
    renderCheckpoints(checkpoints);
    renderTree(lineage, sessionId);
    show("session-view", true);
    setStatus("");
    document.title = "Session " + sessionId + " — durable-sessions viewer";
    follow(sessionId, state.status, token);
  }

  /** Live updates (live.js): the events stream sends every turn after the last one shown. */
  function follow(sessionId, status, token) {
    show("load-more", false);
    window.DurableSessionsLive.follow(sessionId, status, {
      key: getKey(),
      api,
      turnRow,
      renderHeader,
      renderTree,
      setError,
      current: () => token === generation,
    });
  }

  async function route() {
    const token = ++generation;
    window.DurableSessionsLive.stop();
    ready("0");
    takeKeyFromFragment();
    setError("");
    if (!getKey()) {
      showKeyForm("");
      return;
    }
    hideViews();
    show("forget-key", true);
    const sessionId = parseFragment().get("session");
    document.title = "durable-sessions viewer";
    try {
      if (sessionId) await showSession(sessionId, token);
      else await showSessions(token);
      if (token === generation) ready("1");
    } catch (err) {
      if (token !== generation) return;
      if (err instanceof ApiFailure && err.status === 401) {
        setKey(null);
        showKeyForm("The API key was refused: enter a valid key.");
        return;
      }
      setStatus("");
      setError(err instanceof Error ? err.message : String(err));
      ready("error");
    }
  }

  /* ---------- wiring ---------- */

  document.addEventListener("DOMContentLoaded", () => {
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("key-input").value.trim();
      $("key-input").value = "";
      if (key) {
        setKey(key);
        route();
      }
    });
    $("forget-key").addEventListener("click", () => {
      setKey(null);
      showKeyForm("The key was forgotten.");
    });
    $("load-more").addEventListener("click", () => {
      const sessionId = $("session-view").dataset.sessionId;
      const token = generation;
      loadMoreTurns(sessionId, token).catch((err) => setError(err.message));
    });
    window.addEventListener("hashchange", route);
    route();
  });
})();
