// The Hypertab page: sign-in, the table list, the toolbar and the connection states around
// the grid (grid.mjs), all on the JavaScript client (hypertab.mjs).
//
// Sign-in never puts a credential in a URL sent to the server: a pasted key or JWT, or the
// link `hypertab serve --demo` prints, whose credential sits in the URL fragment (never
// sent), is moved to sessionStorage and removed from the address bar at once.

import { connect, pageHubUrl } from "./hypertab.mjs";
import { Grid, describe } from "./grid.mjs";

const TOKEN_KEY = "hypertab.token";
const NAME_KEY = "hypertab.name";
const COLORS = [
  "#d93025",
  "#1e8e3e",
  "#9334e6",
  "#e37400",
  "#007b83",
  "#c5221f",
  "#1967d2",
  "#b06000",
];

const $ = (id) => document.getElementById(id);

const state = {
  client: null,
  table: null,
  grid: null,
  tables: [],
  color: COLORS[Math.floor(Math.random() * COLORS.length)],
  rateTimer: null,
  messageTimer: null,
};

/** Exposed for tests and for people poking at the page from the console. */
window.hypertab = state;

// --- credential ---------------------------------------------------------------------------

function takeFragmentCredential() {
  const hash = window.location.hash.slice(1);
  if (!hash) return null;
  const params = new URLSearchParams(hash);
  const token = params.get("key") ?? params.get("token");
  if (!token) return null;
  sessionStorage.setItem(TOKEN_KEY, token.trim());
  history.replaceState(null, "", window.location.pathname);
  return token.trim();
}

function displayName() {
  return localStorage.getItem(NAME_KEY) || "";
}

// --- status and messages ------------------------------------------------------------------

function setStatus(text, kind) {
  const el = $("status");
  el.textContent = text;
  el.className = `status ${kind}`;
}

function showMessage(text, kind = "error") {
  const el = $("message");
  el.textContent = text;
  el.className = kind === "error" ? "message" : "message info";
  el.hidden = false;
  clearTimeout(state.messageTimer);
  state.messageTimer = setTimeout(() => (el.hidden = true), kind === "error" ? 8000 : 4000);
}

function showSignIn(reason = "", title = "Sign in to Hypertab") {
  $("signin-title").textContent = title;
  $("signin-reason").textContent = reason;
  $("name-input").value = displayName();
  $("signin").hidden = false;
  $("workspace").hidden = !state.client;
  $("token-input").focus();
}

function onStatus({ status }) {
  const signedIn = status === "open";
  $("sign-out").hidden = false;
  switch (status) {
    case "open":
      setStatus("live", "ok");
      $("signin").hidden = true;
      $("workspace").hidden = false;
      break;
    case "connecting":
      setStatus("connecting…", "warn");
      break;
    case "reconnecting":
      setStatus("reconnecting…", "warn");
      break;
    case "revoked":
      setStatus("your access was revoked", "bad");
      showSignIn("Your access was revoked. Sign in with a new key to carry on.", "Access revoked");
      break;
    case "expired":
      setStatus("signed out: token expired", "bad");
      showSignIn("Signed out: your token expired. Sign in again to carry on.", "Token expired");
      break;
    case "refused":
      setStatus("key refused", "bad");
      showSignIn("The hub refused this key or token (unknown, revoked or expired).");
      break;
    case "closed":
      setStatus("disconnected", "bad");
      break;
    default:
      break;
  }
  if (signedIn) refreshTables();
}

function onRateLimited({ retryAfterMs }) {
  clearInterval(state.rateTimer);
  const until = Date.now() + retryAfterMs;
  const tick = () => {
    const left = Math.ceil((until - Date.now()) / 1000);
    if (left <= 0) {
      clearInterval(state.rateTimer);
      if (state.client?.status === "open") setStatus("live", "ok");
      return;
    }
    setStatus(`slow down: retrying in ${left} s`, "warn");
  };
  tick();
  state.rateTimer = setInterval(tick, 250);
}

function scopes() {
  return state.client?.welcome?.scopes ?? [];
}

function canWrite() {
  return scopes().includes("tables:write");
}

function canSchema() {
  return scopes().includes("schema:write");
}

function showAccess() {
  const badge = $("access");
  if (!canWrite()) {
    badge.textContent = "read-only";
    badge.title = "This key has no tables:write scope: you can look, not edit.";
    badge.hidden = false;
  } else if (!canSchema()) {
    badge.textContent = "cells only";
    badge.title = "This key has no schema:write scope: columns and tables cannot change.";
    badge.hidden = false;
  } else {
    badge.hidden = true;
  }
  for (const id of ["row-add", "row-delete", "row-up", "row-down"]) $(id).disabled = !canWrite();
  for (const id of [
    "col-add",
    "col-drop",
    "col-rename",
    "col-set-formula",
    "new-table",
    "new-table-name",
  ]) {
    $(id).disabled = !canSchema();
  }
}

// --- connecting ---------------------------------------------------------------------------

function signIn(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  if (state.client) {
    state.client.setToken(token); // resumes where it was: same replicas, same pending edits
    return;
  }
  const client = connect(pageHubUrl(), { token, probeUrl: "/healthz" });
  state.client = client;
  client.on("status", onStatus);
  client.on("welcome", () => {
    showAccess();
    if (state.grid) state.grid.readOnly = !canWrite();
  });
  client.on("error", (err) => showMessage(describe(err)));
  client.on("grants", () => {
    showAccess();
    if (state.grid) state.grid.readOnly = !canWrite();
    showMessage("Your key's access was changed by an administrator.", "info");
  });
  client.on("ratelimited", onRateLimited);
  setStatus("connecting…", "warn");
  client.ready().then(
    () => openFromPath(),
    () => {},
  );
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  window.location.assign("/");
}

// --- tables -------------------------------------------------------------------------------

async function refreshTables() {
  if (!state.client) return;
  try {
    state.tables = await state.client.listTables();
  } catch {
    return;
  }
  const list = $("table-list");
  const items = state.tables
    .slice()
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((t) => {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = `/t/${encodeURIComponent(t.id)}`;
      a.textContent = t.name;
      a.dataset.id = t.id;
      a.classList.toggle("current", state.table?.id === t.id);
      a.addEventListener("click", (e) => {
        e.preventDefault();
        history.pushState(null, "", a.href);
        openTable(t.id);
      });
      li.appendChild(a);
      return li;
    });
  list.replaceChildren(...items);
}

function openFromPath() {
  const match = /^\/t\/([A-Za-z0-9_-]{1,64})$/.exec(window.location.pathname);
  if (match) openTable(match[1]);
}

async function openTable(id) {
  if (state.table?.id === id) return;
  const client = state.client;
  if (state.grid) state.grid.destroy();
  if (state.table) client.unsubscribe(state.table).catch(() => {});
  state.grid = null;
  state.table = null;
  $("empty").textContent = "Loading…";
  $("empty").hidden = false;
  try {
    // The grid is mounted as soon as the table exists, so a large table's rows show while
    // its snapshot is still streaming in.
    await client.table(id, { created: mount });
  } catch (err) {
    if (state.grid) state.grid.destroy();
    state.grid = null;
    state.table = null;
    $("grid").hidden = true;
    $("toolbar").hidden = true;
    $("empty").textContent = err.code === "unknown_table" ? "No such table." : describe(err);
    $("empty").hidden = false;
    return;
  }
  footer();
  selectionChanged(state.grid?.selected());
  refreshTables();
}

function mount(table) {
  state.table = table;
  $("empty").hidden = true;
  $("toolbar").hidden = false;
  const title = () => {
    $("table-title").textContent = table.name;
    document.title = table.name ? `${table.name} · Hypertab` : "Hypertab";
  };
  state.grid = new Grid($("grid"), table, {
    readOnly: !canWrite(),
    widths: loadWidths(table.id),
    onMessage: showMessage,
    onSelect: (cell) => selectionChanged(cell),
    onResize: (w) => saveWidths(table.id, w),
  });
  table.on("presence", renderPeople);
  table.on("change", (c) => {
    title();
    if (c.ops.some((op) => op.type === "drop_table")) {
      showMessage("This table was dropped.", "info");
    }
    footer();
    selectionChanged(state.grid?.selected());
  });
  table.on("reset", () => {
    title();
    footer();
  });
  table.on("loading", ({ rows }) => {
    title();
    $("sheet-footer").textContent = `loading… ${rows.toLocaleString()} rows so far`;
  });
  table.on("unfollowed", () => {
    showMessage("Your key may no longer read this table.");
    state.grid?.destroy();
    state.grid = null;
    state.table = null;
    $("grid").hidden = true;
    $("toolbar").hidden = true;
    $("empty").textContent = "No access to this table.";
    $("empty").hidden = false;
    refreshTables();
  });
  table.on("rejected", ({ error }) => showMessage(describe(error, table)));
  renderPeople();
}

function footer() {
  const t = state.table;
  if (!t) return;
  $("sheet-footer").textContent =
    `${t.size.toLocaleString()} rows · ${t.columns.length} columns · version ${t.version}`;
}

function selectionChanged(cell) {
  const table = state.table;
  if (!table) return;
  const column = cell ? table.columns[cell.col] : table.columns[state.grid?.sel.col ?? 0];
  $("col-selected").hidden = !column;
  if (column) {
    $("col-selected-label").textContent = `${column.name} (${column.type})`;
    $("col-set-formula").hidden = column.type !== "formula";
    if (document.activeElement !== $("col-set-formula"))
      $("col-set-formula").value = column.formula ?? "";
  }
  if (cell) {
    table.setPresence({
      name: displayName() || undefined,
      color: state.color,
      row: cell.rowId,
      col: cell.columnId,
      rowIndex: cell.row,
    });
  }
}

function renderPeople() {
  const table = state.table;
  const chips = [];
  const me = document.createElement("span");
  me.className = "person";
  me.style.background = state.color;
  me.textContent = displayName() || "you";
  me.title = "you";
  chips.push(me);
  for (const [session, peer] of table?.presence ?? []) {
    const chip = document.createElement("span");
    chip.className = "person";
    const color = peer.state?.color;
    chip.style.background = /^#[0-9a-fA-F]{6}$/.test(color ?? "") ? color : "#e37400";
    chip.textContent = String(peer.state?.name || peer.subject).slice(0, 40);
    chip.title = peer.subject;
    chip.dataset.session = session;
    chips.push(chip);
  }
  $("people").replaceChildren(...chips);
}

function loadWidths(tableId) {
  try {
    const raw = JSON.parse(localStorage.getItem(`hypertab.widths.${tableId}`) ?? "{}");
    return new Map(Object.entries(raw).filter(([, v]) => typeof v === "number"));
  } catch {
    return new Map();
  }
}

function saveWidths(tableId, widths) {
  localStorage.setItem(`hypertab.widths.${tableId}`, JSON.stringify(Object.fromEntries(widths)));
}

// --- toolbar ------------------------------------------------------------------------------

async function createTable() {
  const name = $("new-table-name").value.trim();
  if (!name) return;
  try {
    const table = await state.client.createTable(name, [
      { name: "Name", type: "text" },
      { name: "Notes", type: "text" },
    ]);
    $("new-table-name").value = "";
    history.pushState(null, "", `/t/${table.id}`);
    await refreshTables();
    openTable(table.id);
  } catch (err) {
    showMessage(describe(err));
  }
}

async function addColumn() {
  const table = state.table;
  const name = $("col-name").value.trim();
  const type = $("col-type").value;
  if (!table || !name) return;
  const spec = { name, type };
  if (type === "formula") spec.formula = $("col-formula").value.trim();
  try {
    await table.addColumn(spec);
    $("col-name").value = "";
    $("col-formula").value = "";
  } catch (err) {
    showMessage(describe(err));
  }
}

function selectedColumn() {
  const table = state.table;
  return table?.columns[state.grid?.sel.col ?? -1];
}

async function renameColumn() {
  const column = selectedColumn();
  const name = $("col-rename").value.trim();
  if (!column || !name) return;
  try {
    await state.table.renameColumn(column.id, name);
    $("col-rename").value = "";
  } catch (err) {
    showMessage(describe(err));
  }
}

async function setFormula() {
  const column = selectedColumn();
  const formula = $("col-set-formula").value.trim();
  if (!column || column.type !== "formula" || !formula) return;
  try {
    await state.table.setFormula(column.id, formula);
  } catch (err) {
    showMessage(describe(err));
  }
}

async function dropColumn() {
  const column = selectedColumn();
  if (!column) return;
  try {
    await state.table.dropColumn(column.id);
  } catch (err) {
    showMessage(describe(err));
  }
}

function onEnter(id, fn) {
  $(id).addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      fn();
    }
  });
}

function wire() {
  $("signin-button").addEventListener("click", () => {
    const token = $("token-input").value.trim();
    const name = $("name-input").value.trim();
    if (name) localStorage.setItem(NAME_KEY, name);
    if (!token) {
      $("signin-reason").textContent = "Paste an API key (ht_live_…) or a JWT.";
      return;
    }
    $("token-input").value = "";
    $("signin").hidden = true;
    signIn(token);
  });
  onEnter("token-input", () => $("signin-button").click());
  $("sign-out").addEventListener("click", signOut);
  $("refresh-tables").addEventListener("click", refreshTables);
  $("new-table").addEventListener("click", createTable);
  onEnter("new-table-name", createTable);
  $("col-type").addEventListener("change", () => {
    $("col-formula").hidden = $("col-type").value !== "formula";
  });
  $("col-add").addEventListener("click", addColumn);
  onEnter("col-name", addColumn);
  onEnter("col-formula", addColumn);
  onEnter("col-rename", renameColumn);
  onEnter("col-set-formula", setFormula);
  $("col-drop").addEventListener("click", dropColumn);
  $("row-add").addEventListener("click", () => state.grid?.insertRow());
  $("row-delete").addEventListener("click", () => state.grid?.deleteRows());
  $("row-up").addEventListener("click", () => state.grid?.moveRow(-1));
  $("row-down").addEventListener("click", () => state.grid?.moveRow(1));
  $("undo").addEventListener("click", () => state.grid?.undo());
  $("redo").addEventListener("click", () => state.grid?.redo());
  window.addEventListener("hashchange", () => {
    // The printed link followed in a tab that already shows the page: no reload happens.
    const token = takeFragmentCredential();
    if (token) {
      $("signin").hidden = true;
      $("workspace").hidden = false;
      signIn(token);
    }
  });
  window.addEventListener("popstate", () => {
    if (/^\/t\//.test(window.location.pathname)) openFromPath();
  });
}

function main() {
  wire();
  takeFragmentCredential();
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) {
    $("workspace").hidden = false;
    signIn(token);
  } else {
    showSignIn();
  }
}

main();
