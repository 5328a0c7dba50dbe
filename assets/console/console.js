// The punktfunk web console. Each page talks to the host through the management API's routes
// (docs/management-api.yaml), with the login's cookie and the page's CSRF token.
"use strict";

const CSRF = document.querySelector('meta[name="csrf-token"]').content;

/** Calls the API; resolves to the reply's JSON, rejects with the host's error message. */
async function api(method, path, body) {
  const options = { method, headers: { "X-CSRF-Token": CSRF }, credentials: "same-origin" };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const reply = await fetch(path, options);
  if (reply.status === 401) {
    location.href = "/login?ended=1";
    throw new Error("logged out");
  }
  const data = await reply.json().catch(() => ({}));
  if (!reply.ok) {
    throw new Error(data.error || `the host answered ${reply.status}`);
  }
  return data;
}

/** An element with attributes and children; strings become text, never markup. */
function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (name.startsWith("on")) {
      node.addEventListener(name.slice(2), value);
    } else if (value !== false && value !== null && value !== undefined) {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

/** A status line that screen readers announce. */
function say(node, text, kind) {
  node.textContent = text;
  node.className = `message ${kind || "info"}`;
}

function ago(seconds) {
  if (seconds < 60) return `${seconds} s`;
  return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
}

function date(unix) {
  return new Date(unix * 1000).toLocaleString();
}

// ---------------------------------------------------------------------------------------------
// Graphs

const METRICS = [
  {
    key: "bitrate_kbps", label: "Bitrate",
    show: (v) => (v >= 1000 ? `${(v / 1000).toFixed(1)} Mbit/s` : `${v.toFixed(0)} kbit/s`),
  },
  { key: "fps", label: "Frames per second", show: (v) => `${v.toFixed(0)} fps` },
  { key: "fec_percent", label: "FEC", show: (v) => `${v.toFixed(0)} %` },
  { key: "loss_percent", label: "Reported loss", show: (v) => `${v.toFixed(1)} %` },
  { key: "host_latency_ms", label: "Host latency (render to sent)", show: (v) => `${v.toFixed(1)} ms` },
];

const GRAPH_W = 300;
const GRAPH_H = 64;
const GRAPH_SPAN_MAX = 300; // samples: five minutes
const GRAPH_SPAN_MIN = 60; // a young stream's first minute fills the graph

/** A line graph of one metric over the samples, newest at the right. */
function graph(metric, samples) {
  const values = samples.map((s) => s[metric.key]);
  const last = values.length ? values[values.length - 1] : null;
  const max = Math.max(1, ...values) * 1.1;
  const span = Math.min(GRAPH_SPAN_MAX, Math.max(GRAPH_SPAN_MIN, values.length));
  const step = GRAPH_W / (span - 1);
  const offset = span - values.length;
  const points = values
    .map((v, i) => `${((offset + i) * step).toFixed(1)},${(GRAPH_H - (v / max) * GRAPH_H).toFixed(1)}`)
    .join(" ");
  const shown = last === null ? "no data yet" : metric.show(last);
  const picture = svg("svg", {
    viewBox: `0 0 ${GRAPH_W} ${GRAPH_H}`,
    preserveAspectRatio: "none",
    role: "img",
    "aria-label": `${metric.label}, last five minutes, now ${shown}`,
  });
  picture.append(svg("polyline", { points, class: "line" }));
  return el(
    "figure",
    { class: "graph", "data-metric": metric.key },
    el("figcaption", {}, `${metric.label}: `, el("strong", { class: "value" }, shown)),
    picture,
  );
}

// ---------------------------------------------------------------------------------------------
// Pages: each draws into `root` and returns a function that stops its timers.

/** Runs `tick` now and every `ms` until stopped; errors go to `status`. */
function every(ms, tick, status) {
  let stopped = false;
  let timer = null;
  const run = async () => {
    if (stopped) return;
    try {
      await tick();
      if (status && status.classList.contains("error")) say(status, "");
    } catch (e) {
      if (status) say(status, e.message, "error");
    }
    if (!stopped) timer = setTimeout(run, ms);
  };
  run();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

function homePage(root) {
  const status = el("p", { role: "status" });
  const host = el("section", { "aria-labelledby": "host-h" }, el("h2", { id: "host-h" }, "Host"));
  const facts = el("dl", { class: "facts" });
  host.append(facts);
  const sessions = el("section", { "aria-labelledby": "sessions-h" },
    el("h2", { id: "sessions-h" }, "Streams"));
  const list = el("div", { class: "sessions" });
  sessions.append(list);
  root.append(el("h1", {}, "Home"), status, host, sessions);

  return every(1000, async () => {
    const [info, clients] = await Promise.all([api("GET", "/api/status"), api("GET", "/api/clients")]);
    const names = new Map(clients.map((c) => [c.id, c.name]));
    const renderer = info.renderer.in_use
      ? `${info.renderer.in_use.name} on ${info.renderer.in_use.device}` +
        (info.renderer.in_use.description ? ` (${info.renderer.in_use.description})` : "")
      : `${info.renderer.setting} (no session yet)`;
    // Why the GPU does not render, where auto looked for one.
    const fallback = info.renderer.in_use && info.renderer.in_use.fallback;
    const enc = info.video_encoders || {};
    const encoders = ["h264", "hevc", "av1"]
      .map((c) => `${c.toUpperCase()}: ${enc[c] || "none"}`)
      .join(", ");
    // Each GPU encoder passed over, with why.
    const unavailable = (enc.unavailable || []).map((u) =>
      el("p", { class: "why" },
        `${u.encoder} (${u.codecs.map((c) => c.toUpperCase()).join(", ")}) unavailable: ${u.reason}`));
    facts.replaceChildren(
      el("dt", {}, "Name"), el("dd", {}, info.name),
      el("dt", {}, "Version"), el("dd", {}, info.version),
      el("dt", {}, "Renderer"), el("dd", {}, renderer,
        fallback ? el("p", { class: "why" }, `No GPU renders: ${fallback}`) : null),
      el("dt", {}, "Encoders"), el("dd", {}, encoders, unavailable),
      el("dt", {}, "Ports"), el("dd", {}, `HTTP ${info.ports.http}, HTTPS ${info.ports.https}, RTSP ${info.ports.rtsp}`),
    );
    if (!info.sessions.length) {
      list.replaceChildren(el("p", {}, "Nobody is streaming. Start a game from Moonlight."));
      return;
    }
    const cards = [];
    for (const s of info.sessions) {
      const stats = s.streaming ? await api("GET", `/api/sessions/${s.id}/stats`) : { samples: [] };
      const what = s.streaming
        ? `${s.width}×${s.height} at ${s.fps} Hz, ${s.video_codec.toUpperCase()} ${s.chroma} ${s.bit_depth}-bit on ${s.video_encoder || "…"}`
        : `${s.width}×${s.height} at ${s.fps} Hz, starting`;
      cards.push(el(
        "article",
        { class: "session", "data-session": s.id, "aria-label": `Session ${s.id}` },
        el("h3", {}, `${names.get(s.client) || `client ${s.client}`}: ${s.app || "no app"}`),
        el("p", {}, what),
        el("div", { class: "graphs" }, METRICS.map((m) => graph(m, stats.samples))),
      ));
    }
    list.replaceChildren(...cards);
  }, status);
}

function pairingPage(root) {
  const waiting = el("div", { "aria-live": "polite" });
  const pin = el("input", {
    id: "pin", name: "pin", inputmode: "numeric", pattern: "[0-9]{4}", maxlength: 4,
    autocomplete: "off", required: true, "aria-describedby": "pin-help",
  });
  const result = el("p", { id: "pair-result", role: "status" });
  const form = el(
    "form",
    { onsubmit: (e) => { e.preventDefault(); submit(); } },
    el("label", { for: "pin" }, "PIN the client shows"),
    el("p", { id: "pin-help", class: "hint" }, "Four digits."),
    pin,
    el("button", { type: "submit" }, "Pair"),
  );
  root.append(
    el("h1", {}, "Pairing"),
    el("p", {}, "In Moonlight, add this host (it finds it on the network, or type its address) and select it. " +
      "Moonlight shows a PIN: type it here."),
    waiting, form, result,
  );

  async function submit() {
    if (!/^[0-9]{4}$/.test(pin.value)) {
      say(result, "A PIN is exactly four digits.", "error");
      pin.focus();
      return;
    }
    const before = new Set((await api("GET", "/api/clients")).map((c) => c.id));
    const chosen = waiting.querySelector('input[name="pairing"]:checked');
    try {
      const request = { pin: pin.value };
      if (chosen) request.address = chosen.value;
      const reply = await api("POST", "/api/pair", request);
      say(result, `PIN sent to ${reply.client}; waiting for the client to finish…`);
    } catch (e) {
      say(result, e.message, "error");
      return;
    }
    pin.value = "";
    // A client finishes within a second or two; one that does not in 20 s has given up, most
    // often over a PIN typed wrong (it says so on its screen).
    for (let i = 0; i < 40; i++) {
      await new Promise((r) => setTimeout(r, 500));
      const added = (await api("GET", "/api/clients")).filter((c) => !before.has(c.id));
      if (added.length) {
        say(result, `Paired: ${added[0].name}. It can stream now.`, "ok");
        return;
      }
    }
    say(result, "The client did not finish pairing. Was the PIN right? Try again from Moonlight.", "error");
  }

  return every(1000, async () => {
    const pending = await api("GET", "/api/pairings");
    if (!pending.length) {
      waiting.replaceChildren(el("p", { class: "hint" }, "No client waits for a PIN right now."));
      return;
    }
    // Keep the user's choice of client across refreshes; the oldest is chosen at first.
    const was = waiting.querySelector('input[name="pairing"]:checked');
    const keep = was && pending.some((p) => p.address === was.value) ? was.value : pending[0].address;
    waiting.replaceChildren(el("fieldset", { class: "pending" },
      el("legend", {}, "Clients waiting for their PIN"),
      pending.map((p, i) => el("div", { class: "choice" },
        el("input", { type: "radio", name: "pairing", id: `pairing-${i}`, value: p.address, checked: p.address === keep }),
        el("label", { for: `pairing-${i}` }, `A client at ${p.address} waits for its PIN (${ago(p.waiting_s)}).`)))));
  });
}

function clientsPage(root) {
  const status = el("p", { role: "status" });
  const body = el("tbody");
  root.append(
    el("h1", {}, "Clients"),
    status,
    el("table", {},
      el("caption", {}, "Paired Moonlight clients"),
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Name"),
        el("th", { scope: "col" }, "Paired"), el("th", { scope: "col" }, "Actions"))),
      body),
  );

  async function load() {
    const clients = await api("GET", "/api/clients");
    if (!clients.length) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: 3 }, "No client is paired yet.")));
      return;
    }
    body.replaceChildren(...clients.map((c) => {
      const input = el("input", { value: c.name, maxlength: 64, "aria-label": `Name of ${c.name}` });
      return el("tr", { "data-client": c.id },
        el("td", {}, el("form", {
          class: "inline",
          onsubmit: async (e) => {
            e.preventDefault();
            try {
              await api("PATCH", `/api/clients/${encodeURIComponent(c.id)}`, { name: input.value });
              say(status, `Renamed to ${input.value}.`, "ok");
              await load();
            } catch (err) {
              say(status, err.message, "error");
            }
          },
        }, input, el("button", { type: "submit" }, "Rename"))),
        el("td", { "data-label": "Paired" }, date(c.paired_at)),
        el("td", {}, el("button", {
          class: "danger",
          "aria-label": `Unpair ${c.name}`,
          onclick: async () => {
            if (!confirm(`Unpair ${c.name}? It must pair again to stream.`)) return;
            try {
              await api("DELETE", `/api/clients/${encodeURIComponent(c.id)}`);
              say(status, `${c.name} is unpaired.`, "ok");
              await load();
            } catch (err) {
              say(status, err.message, "error");
            }
          },
        }, "Unpair")));
    }));
  }
  load().catch((e) => say(status, e.message, "error"));
  return () => {};
}

function sessionsPage(root) {
  const head = el("thead");
  const columns = (launch) => ["Session", "Client", "App", "Mode", "Video", launch ? "Launch another app" : null, ""]
    .filter((h) => h !== null).map((h) => el("th", { scope: "col" }, h));
  head.replaceChildren(el("tr", {}, columns(false)));
  function launchForm(s) {
    const pick = el("select", { "aria-label": `App to launch in session ${s.id}` },
      launchable.map((name) => el("option", { value: name, selected: name === s.app }, name)));
    return el("form", {
      class: "inline",
      onsubmit: async (e) => {
        e.preventDefault();
        try {
          await api("POST", `/api/sessions/${s.id}/launch`, { app: pick.value });
          say(status, `${pick.value} is on in session ${s.id}.`, "ok");
        } catch (err) {
          say(status, err.message, "error");
        }
      },
    }, pick, el("button", { type: "submit" }, "Launch"));
  }

  const status = el("p", { role: "status" });
  const body = el("tbody");
  root.append(
    el("h1", {}, "Sessions"),
    status,
    el("table", {},
      el("caption", {}, "Running sessions, one per streaming client"),
      head,
      body),
  );
  let launchable = null;
  return every(2000, async () => {
    const [sessions, clients] = await Promise.all([api("GET", "/api/sessions"), api("GET", "/api/clients")]);
    if (launchable === null) {
      const info = await api("GET", "/api/status");
      launchable = info.base_app ? (await api("GET", "/api/apps")).map((a) => a.name) : [];
      head.replaceChildren(el("tr", {}, columns(launchable.length > 0)));
    }
    // Leave the table alone while someone picks an app in it.
    if (body.contains(document.activeElement) && document.activeElement.tagName === "SELECT") return;
    const names = new Map(clients.map((c) => [c.id, c.name]));
    if (!sessions.length) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: 6 }, "No session runs.")));
      return;
    }
    body.replaceChildren(...sessions.map((s) => el("tr", { "data-session": s.id },
      el("td", { "data-label": "Session" }, s.id),
      el("td", { "data-label": "Client" }, names.get(s.client) || s.client),
      el("td", { "data-label": "App" }, s.app || "—"),
      el("td", { "data-label": "Mode" }, `${s.width}×${s.height} at ${s.fps} Hz`),
      el("td", { "data-label": "Video" },
        s.streaming ? `${s.video_codec} on ${s.video_encoder || "…"}` : "starting"),
      launchable.length ? el("td", {}, launchForm(s)) : null,
      el("td", {}, el("button", {
        class: "danger",
        "aria-label": `Stop session ${s.id}`,
        onclick: async () => {
          if (!confirm(`Stop session ${s.id}? The client's stream ends.`)) return;
          try {
            await api("DELETE", `/api/sessions/${s.id}`);
            say(status, `Session ${s.id} stopped.`, "ok");
          } catch (err) {
            say(status, err.message, "error");
          }
        },
      }, "Stop")))));
  }, status);
}


/** Splits a command line as a shell would for simple cases: spaces, quotes, backslashes. */
function splitCommand(line) {
  const words = [];
  let word = null;
  let quote = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === quote) quote = null;
      else if (c === "\\" && quote === '"' && i + 1 < line.length) word += line[++i];
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      word = word ?? "";
    } else if (c === "\\" && i + 1 < line.length) {
      word = (word ?? "") + line[++i];
    } else if (/\s/.test(c)) {
      if (word !== null) words.push(word);
      word = null;
    } else {
      word = (word ?? "") + c;
    }
  }
  if (quote) throw new Error("a quote in the command is not closed");
  if (word !== null) words.push(word);
  return words;
}

/** The command line that splitCommand turns back into `words`. */
function joinCommand(words) {
  return words.map((w) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'"'"'`)}'`)).join(" ");
}

function appsPage(root) {
  const status = el("p", { role: "status" });
  const list = el("div", { class: "apps" });
  const formBox = el("section", { "aria-labelledby": "app-form-h" });
  root.append(
    el("h1", {}, "Apps"),
    el("p", {}, "What clients can start. Changes are saved to the config file, keeping its comments, and clients see them at their next app list."),
    status, list, formBox,
  );

  function field(id, label, input, help) {
    return [el("label", { for: id }, label), help ? el("p", { class: "hint", id: `${id}-help` }, help) : null, input];
  }

  function showForm(app) {
    const editing = app !== null;
    const name = el("input", { id: "app-name", required: true, maxlength: 100, value: editing ? app.name : "" });
    const cmd = el("input", {
      id: "app-cmd", required: true, value: editing ? joinCommand(app.cmd) : "",
      "aria-describedby": "app-cmd-help", spellcheck: "false",
    });
    const env = el("textarea", { id: "app-env", rows: 3, "aria-describedby": "app-env-help", spellcheck: "false" });
    env.value = editing ? app.env.map((v) => `${v.name}=${v.value}`).join("\n") : "";
    const dir = el("input", { id: "app-dir", value: editing ? app.working_dir : "", spellcheck: "false" });
    const prepDo = el("textarea", { id: "app-prep-do", rows: 2, "aria-describedby": "app-prep-do-help", spellcheck: "false" });
    const prepUndo = el("textarea", { id: "app-prep-undo", rows: 2, "aria-describedby": "app-prep-undo-help", spellcheck: "false" });
    if (editing) {
      prepDo.value = app.prep.map((p) => joinCommand(p.do || [])).join("\n");
      prepUndo.value = app.prep.map((p) => joinCommand(p.undo || [])).join("\n");
    }
    const image = el("input", { id: "app-image", type: "file", accept: "image/png,image/jpeg" });
    const result = el("p", { id: "app-result", role: "status" });
    const form = el("form", { id: "app-form", onsubmit: (e) => { e.preventDefault(); save(); } },
      ...field("app-name", "Name", name),
      ...field("app-cmd", "Command", cmd, "The program and its arguments, as in a shell, e.g. steam -gamepadui"),
      ...field("app-env", "Environment", env, "One VARIABLE=value per line."),
      ...field("app-dir", "Working directory", dir),
      ...field("app-prep-do", "Run before it starts", prepDo, "One command per line, run in order before the app starts."),
      ...field("app-prep-undo", "Undo after it ends", prepUndo, "One command per line, the undo of the command on the same line above; they run in reverse order."),
      ...field("app-image", "Box art (PNG or JPEG)", image),
      el("div", { class: "buttons" },
        el("button", { type: "submit" }, editing ? "Save changes" : "Add the app"),
        editing ? el("button", { type: "button", class: "secondary", onclick: () => showForm(null) }, "Cancel") : null),
      result);
    formBox.replaceChildren(el("h2", { id: "app-form-h" }, editing ? `Edit ${app.name}` : "Add an app"), form);

    async function save() {
      let body;
      try {
        const environment = [];
        for (const line of env.value.split("\n").map((l) => l.trim()).filter(Boolean)) {
          const at = line.indexOf("=");
          if (at < 1) throw new Error(`"${line}" is not VARIABLE=value`);
          environment.push({ name: line.slice(0, at), value: line.slice(at + 1) });
        }
        const dos = prepDo.value.split("\n");
        const undos = prepUndo.value.split("\n");
        const prep = [];
        for (let i = 0; i < Math.max(dos.length, undos.length); i++) {
          const d = splitCommand(dos[i] || "");
          const u = splitCommand(undos[i] || "");
          if (d.length || u.length) prep.push({ do: d, undo: u });
        }
        body = { name: name.value.trim(), cmd: splitCommand(cmd.value), env: environment, working_dir: dir.value.trim(), prep };
      } catch (e) {
        say(result, e.message, "error");
        return;
      }
      try {
        const saved = editing
          ? await api("PUT", `/api/apps/${app.id}`, body)
          : await api("POST", "/api/apps", body);
        if (image.files.length) {
          const reply = await fetch(`/api/apps/${saved.id}/image`, {
            method: "PUT", credentials: "same-origin",
            headers: { "X-CSRF-Token": CSRF, "Content-Type": image.files[0].type || "application/octet-stream" },
            body: image.files[0],
          });
          const data = await reply.json().catch(() => ({}));
          if (!reply.ok) throw new Error(`${saved.name} is saved, but its box art is not: ${data.error || reply.status}`);
        }
        say(status, `${saved.name} is saved.`, "ok");
        showForm(null);
        await load();
      } catch (e) {
        say(result, e.message, "error");
      }
    }
  }

  async function load() {
    const apps = await api("GET", "/api/apps");
    list.replaceChildren(...apps.map((a) => el("article", { class: "app", "data-app": a.name },
      el("img", { src: `/api/apps/${a.id}/image?${a.has_image ? Date.now() : "default"}`, alt: `Box art of ${a.name}`, width: 94, height: 133 }),
      el("div", {},
        el("h3", {}, a.name),
        el("p", { class: "command" }, el("code", {}, joinCommand(a.cmd))),
        a.fixed
          ? el("p", { class: "hint" }, a.name === "Test Pattern" ? "Built in: shown while the catalog is empty." : "The base app: set by [base_app].")
          : el("div", { class: "buttons" },
            el("button", { type: "button", "aria-label": `Edit ${a.name}`, onclick: () => { showForm(a); document.getElementById("app-name").focus(); } }, "Edit"),
            el("button", {
              type: "button", class: "danger", "aria-label": `Delete ${a.name}`,
              onclick: async () => {
                if (!confirm(`Delete ${a.name} from the catalog?`)) return;
                try {
                  await api("DELETE", `/api/apps/${a.id}`);
                  say(status, `${a.name} is deleted.`, "ok");
                  await load();
                } catch (e) {
                  say(status, e.message, "error");
                }
              },
            }, "Delete"))))));
  }
  showForm(null);
  load().catch((e) => say(status, e.message, "error"));
  return () => {};
}

function logsPage(root) {
  const source = el("select", { id: "log-source" });
  const level = el("select", { id: "log-level" },
    ["error", "warn", "info", "debug"].map((l) => el("option", { value: l, selected: l === "info" }, l)));
  const filter = el("input", { id: "log-filter", type: "search", placeholder: "text to look for", spellcheck: "false" });
  const status = el("p", { role: "status" });
  const lines = el("ol", { class: "log", "aria-live": "off", "aria-label": "Log lines" });
  root.append(
    el("h1", {}, "Logs"),
    el("div", { class: "log-controls" },
      el("div", {}, el("label", { for: "log-source" }, "Log"), source),
      el("div", { id: "log-level-box" }, el("label", { for: "log-level" }, "At least"), level),
      el("div", { class: "grow" }, el("label", { for: "log-filter" }, "Filter"), filter)),
    status, lines);

  let events = null;
  const MAX_LINES = 1000;

  function shown(li) {
    const needle = filter.value.trim().toLowerCase();
    li.hidden = needle !== "" && !li.textContent.toLowerCase().includes(needle);
  }

  function add(line) {
    const stamp = line.unix_ms ? new Date(line.unix_ms).toLocaleTimeString() : "";
    const li = el("li", { class: `level-${line.level || "file"}`, "data-seq": line.seq },
      stamp ? el("time", {}, stamp) : null,
      line.level ? el("span", { class: "level" }, line.level.toUpperCase()) : null,
      line.level ? el("span", { class: "target" }, line.target) : null,
      el("span", { class: "text" }, line.text));
    shown(li);
    const atBottom = lines.scrollTop + lines.clientHeight >= lines.scrollHeight - 40;
    lines.append(li);
    while (lines.children.length > MAX_LINES) lines.firstElementChild.remove();
    if (atBottom) lines.scrollTop = lines.scrollHeight;
  }

  function follow() {
    if (events) events.close();
    lines.replaceChildren();
    const isHost = source.value === "host";
    document.getElementById("log-level-box").hidden = !isHost;
    const query = isHost ? `?level=${encodeURIComponent(level.value)}` : "";
    events = new EventSource(`/api/logs/${encodeURIComponent(source.value)}/events${query}`);
    events.onopen = () => say(status, "");
    events.onmessage = (e) => add(JSON.parse(e.data));
    events.addEventListener("skipped", (e) => say(status, e.data, "info"));
    events.onerror = () => {
      say(status, "The connection to the host was lost; trying again…", "error");
      // A login that ended shows as an error too: a call tells which.
      api("GET", "/api/status").catch(() => {});
    };
  }

  source.addEventListener("change", follow);
  level.addEventListener("change", follow);
  const refilter = () => { for (const li of lines.children) shown(li); };
  filter.addEventListener("input", refilter);
  filter.addEventListener("change", refilter);
  api("GET", "/api/logs").then((logs) => {
    source.replaceChildren(...logs.map((l) => el("option", { value: l.name },
      l.name === "host" ? "punktfunk (the host)" : l.name)));
    follow();
  }).catch((e) => say(status, e.message, "error"));
  return () => { if (events) events.close(); };
}

function settingsPage(root) {
  const status = el("p", { role: "status" });
  const list = el("div", { class: "settings" });
  root.append(
    el("h1", {}, "Settings"),
    el("p", {}, "Saved to the config file, keeping its comments. What applies to new sessions is in force for the next stream; the rest at the host's next start."),
    status, list);

  function control(s, id) {
    const current = s.value ?? s.default;
    if (s.kind === "boolean") {
      return el("input", { id, type: "checkbox", checked: current === true, "aria-describedby": `${id}-doc` });
    }
    if (s.choices.length) {
      return el("select", { id, "aria-describedby": `${id}-doc` },
        s.choices.map((c) => el("option", { value: c, selected: c === current }, c)));
    }
    return el("input", {
      id, type: s.kind === "integer" ? "number" : "text", step: s.kind === "integer" ? 1 : null,
      value: s.value ?? "", placeholder: s.default === null ? "(worked out at start)" : String(s.default),
      "aria-describedby": `${id}-doc`, spellcheck: "false",
    });
  }

  function read(s, input) {
    if (s.kind === "boolean") return input.checked;
    if (s.kind === "integer") {
      if (input.value.trim() === "") throw new Error("type a whole number, or reset to the default");
      return Number(input.value);
    }
    return input.value;
  }

  function row(s, note) {
    const id = `setting-${s.key.replace(/\W/g, "-")}`;
    const input = control(s, id);
    const result = el("p", { role: "status" });
    const shownDefault = s.default === null ? "worked out at start" : JSON.stringify(s.default);
    const save = async (method) => {
      try {
        const saved = method === "PUT"
          ? await api("PUT", `/api/settings/${encodeURIComponent(s.key)}`, { value: read(s, input) })
          : await api("DELETE", `/api/settings/${encodeURIComponent(s.key)}`);
        const text = method === "DELETE" ? "Back to its default."
          : `Saved. ${saved.applies === "restart" ? "It applies when the host starts again." : "New sessions use it."}`;
        section.replaceWith(row(saved, text));
      } catch (e) {
        say(result, e.message, "error");
      }
    };
    const section = el("section", { class: "setting", "data-setting": s.key, "aria-labelledby": `${id}-label` },
      el("label", { id: `${id}-label`, for: id }, s.key),
      el("p", { id: `${id}-doc`, class: "hint" }, s.doc),
      el("p", { class: "meta" },
        `Default: ${shownDefault}. `,
        s.value === null ? "Not set in the file. " : `Set in the file to ${JSON.stringify(s.value)}. `,
        el("span", { class: `applies ${s.applies}` }, s.applies === "restart" ? "Needs a restart." : "Applies to new sessions.")),
      el("div", { class: "inline" }, input,
        el("button", { type: "button", onclick: () => save("PUT"), "aria-label": `Save ${s.key}` }, "Save"),
        el("button", { type: "button", class: "secondary", onclick: () => save("DELETE"), "aria-label": `Reset ${s.key} to its default` }, "Reset")),
      result);
    if (note) say(result, note, "ok");
    return section;
  }

  api("GET", "/api/settings").then((settings) => {
    const tables = new Map();
    for (const s of settings) {
      const table = s.key.split(".")[0];
      if (!tables.has(table)) tables.set(table, []);
      tables.get(table).push(s);
    }
    list.replaceChildren(...[...tables].map(([table, items]) => el("fieldset", {},
      el("legend", {}, `[${table}]`), items.map(row))));
  }).catch((e) => say(status, e.message, "error"));
  return () => {};
}

const PAGES = { home: homePage, apps: appsPage, logs: logsPage, settings: settingsPage, pairing: pairingPage, clients: clientsPage, sessions: sessionsPage };
let stopPage = () => {};

function show() {
  const name = location.hash.replace(/^#/, "") || "home";
  const draw = PAGES[name] || homePage;
  stopPage();
  const root = document.getElementById("page");
  root.replaceChildren();
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.page === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  stopPage = draw(root) || (() => {});
  document.title = `${name[0].toUpperCase()}${name.slice(1)} · punktfunk`;
}

window.addEventListener("hashchange", () => {
  show();
  document.getElementById("page").focus();
});
show();
