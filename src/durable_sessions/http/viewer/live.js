/* durable-sessions viewer: the live part. Subscribes to GET /sessions/{id}/events (server-sent
 * events, read with fetch so the key goes in the Authorization header, never in the URL) and
 * keeps the open session's view current without a reload: stored turns are appended, a turn an
 * agent is writing grows in a "streaming" row (replaced by the stored turn once it lands), a
 * restart empties it, new branches appear in the tree, the header follows the status.
 * <section id="session-view" data-live> is "open" while subscribed, else "closed".
 */
(function () {
  "use strict";

  let current = null; // { sessionId, controller, hooks }

  function parseBlock(block) {
    const event = { kind: "message", data: "", id: null };
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") event.kind = value;
      else if (field === "data") data.push(value);
      else if (field === "id") event.id = value;
    }
    event.data = data.join("\n");
    return event;
  }

  function streamingRow(hooks, data) {
    const body = document.getElementById("transcript-body");
    let row = null;
    for (const tr of body.querySelectorAll("tr.streaming")) {
      if (tr.dataset.streamId === data.turn_id) row = tr;
    }
    if (!row) {
      row = hooks.turnRow({
        turn_id: data.turn_id,
        seq: null,
        role: "assistant",
        content: "",
        agent: data.agent,
        metadata: {},
      });
      row.classList.add("streaming");
      row.dataset.streamId = data.turn_id;
      row.dataset.agent = data.agent;
      row.dataset.chunks = "0";
      body.append(row);
      document.getElementById("transcript-empty").hidden = true;
    }
    return row;
  }

  function textOf(row) {
    return row.querySelector(".content-text");
  }

  function onDelta(hooks, data) {
    const row = streamingRow(hooks, data);
    if (String(data.attempt) !== (row.dataset.attempt || String(data.attempt))) return;
    row.dataset.attempt = String(data.attempt);
    textOf(row).append(document.createTextNode(data.text));
    row.dataset.chunks = String(Number(row.dataset.chunks) + data.chunks);
  }

  function onRestart(hooks, data) {
    const row = streamingRow(hooks, data);
    const text = textOf(row);
    while (text.firstChild) text.removeChild(text.firstChild);
    row.dataset.attempt = String(data.attempt);
    row.dataset.chunks = "0";
    row.dataset.restarts = String(Number(row.dataset.restarts || "0") + 1);
  }

  function onDone(hooks, data) {
    streamingRow(hooks, data).dataset.done = "1";
  }

  function onTurn(hooks, turn) {
    const body = document.getElementById("transcript-body");
    for (const tr of body.querySelectorAll("tr.streaming")) {
      // The stored turn replaces the row that streamed it (same id, or that agent's finished one).
      if (tr.dataset.streamId === turn.turn_id || (tr.dataset.done === "1" && tr.dataset.agent === turn.agent)) {
        tr.remove();
      }
    }
    for (const tr of body.querySelectorAll("tr.turn:not(.streaming)")) {
      if (tr.dataset.seq === String(turn.seq)) return; // already shown
    }
    const row = hooks.turnRow(turn);
    const firstStreaming = body.querySelector("tr.streaming");
    if (firstStreaming) body.insertBefore(row, firstStreaming);
    else body.append(row);
    hooks.turnsChanged();
  }

  function onRewind(hooks, data) {
    const body = document.getElementById("transcript-body");
    for (const tr of body.querySelectorAll("tr.turn:not(.streaming)")) {
      if (Number(tr.dataset.seq) >= data.turn_count) tr.remove();
    }
    hooks.turnsChanged();
  }

  function dispatch(hooks, event) {
    let data = null;
    try {
      data = event.data ? JSON.parse(event.data) : null;
    } catch (_err) {
      return;
    }
    if (event.kind === "delta") onDelta(hooks, data);
    else if (event.kind === "restart") onRestart(hooks, data);
    else if (event.kind === "done") onDone(hooks, data);
    else if (event.kind === "turn") onTurn(hooks, data);
    else if (event.kind === "rewind") onRewind(hooks, data);
    else if (event.kind === "status") hooks.status(data);
    else if (event.kind === "branch") hooks.branch(data);
  }

  function lastSeq() {
    let last = -1;
    for (const tr of document.getElementById("transcript-body").querySelectorAll("tr.turn:not(.streaming)")) {
      last = Math.max(last, Number(tr.dataset.seq));
    }
    return last;
  }

  async function run(state) {
    const view = document.getElementById("session-view");
    while (current === state) {
      try {
        const response = await fetch(new URL("sessions/" + encodeURIComponent(state.sessionId) + "/events", document.baseURI), {
          headers: { Authorization: "Bearer " + state.key, Accept: "text/event-stream", "Last-Event-ID": String(lastSeq()) },
          credentials: "omit",
          cache: "no-store",
          signal: state.controller.signal,
        });
        if (!response.ok || !response.body) throw new Error("HTTP " + response.status);
        view.dataset.live = "open";
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            if (current === state) dispatch(state.hooks, parseBlock(block));
          }
        }
      } catch (_err) {
        if (current !== state) return;
      }
      view.dataset.live = "closed";
      if (state.hooks.terminal()) return; // a closed or expired session says nothing more
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  /** The hooks the viewer's session view gives ``run`` (``ctx``: its render functions). */
  function viewHooks(sessionId, initialStatus, ctx) {
    const base = "sessions/" + encodeURIComponent(sessionId);
    let status = initialStatus;
    let refreshing = null; // one header refresh in flight at most
    const refreshHeader = () => {
      refreshing =
        refreshing ||
        ctx
          .api(base)
          .then((state) => {
            if (ctx.current()) ctx.renderHeader(state);
          })
          .catch(() => {})
          .finally(() => {
            refreshing = null;
          });
    };
    return {
      turnRow: ctx.turnRow,
      turnsChanged() {
        const body = document.getElementById("transcript-body");
        const shown = body.querySelectorAll("tr.turn:not(.streaming)").length;
        document.getElementById("transcript-count").textContent = "(" + shown + " shown)";
        document.getElementById("transcript-empty").hidden = body.childElementCount !== 0;
        refreshHeader(); // counters (turns, tokens) moved with the transcript
      },
      status(state) {
        if (!ctx.current()) return;
        status = state.status;
        ctx.renderHeader(state);
      },
      branch() {
        ctx
          .api(base + "/lineage")
          .then((lineage) => {
            if (ctx.current()) ctx.renderTree(lineage, sessionId);
          })
          .catch((err) => ctx.setError(err.message));
      },
      terminal() {
        return status === "closed" || status === "expired";
      },
    };
  }

  window.DurableSessionsLive = {
    /** Follow the open session view of ``sessionId`` (``ctx``: the viewer's functions). */
    follow(sessionId, status, ctx) {
      this.start(sessionId, ctx.key, viewHooks(sessionId, status, ctx));
    },
    /** Follow ``sessionId`` (stops following the previous one). */
    start(sessionId, key, hooks) {
      this.stop();
      current = { sessionId, key, hooks, controller: new AbortController() };
      run(current);
    },
    stop() {
      if (current) current.controller.abort();
      current = null;
      const view = document.getElementById("session-view");
      if (view) view.dataset.live = "closed";
    },
  };
})();
