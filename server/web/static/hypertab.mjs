// Hypertab JavaScript client: one ES module, no build step, no dependencies.
//
// How it works
// ------------
// A Client holds one WebSocket to the hub speaking `hypertab.v1.json` (docs/protocol.md).
// The credential travels as a `hypertab.bearer.<token>` subprotocol entry, never in the URL.
// Every table followed with `client.table()` is a live replica: the server's committed state
// (snapshot, then `changes` in version order) plus an overlay of this client's optimistic
// edits, which is dropped when the batch is acknowledged (its change has arrived by then) or
// refused (the view falls back to the server's values).
//
// Edits made in one tick are coalesced into one `apply` batch per table, split to fit
// `welcome.limits`; all sends go through a pacer that keeps the same two sliding windows as
// the server (messages per second, ops per minute), so a paste of hundreds of cells is sent
// as one batch, never a burst. A batch keeps its (client, op) ids until acknowledged: after a
// dropped connection the client reconnects with jittered exponential backoff, re-subscribes
// with `since` = the version it has, and resends unacknowledged batches with the same ids, so
// an edit made offline is applied exactly once.
//
// Documented in docs/js-client.md.

export const ENCODING = "hypertab.v1.json";
export const BEARER_PREFIX = "hypertab.bearer.";

/** Error codes the protocol marks temporary (the same request may succeed later). */
const TEMPORARY = new Set(["secrets_unavailable", "rate_limited", "unavailable", "internal"]);

/** Close codes (docs/protocol.md section 7): what to do after each. */
const CLOSE_ADVICE = {
  1000: "stop",
  1001: "reconnect",
  1002: "stop",
  1007: "stop",
  1009: "stop",
  1011: "reconnect",
  4000: "stop",
  4001: "expired",
  4003: "revoked",
  4008: "reconnect",
  4009: "backoff",
  4029: "backoff",
};

/** A failure with the wire's error code (`code`), e.g. `type_mismatch`, `rate_limited`. */
export class HypertabError extends Error {
  constructor(code, message, details = {}) {
    super(message || code);
    this.name = "HypertabError";
    this.code = code;
    this.temporary = TEMPORARY.has(code) || code === "connection_lost";
    this.opIndex = details.op_index ?? null;
    this.retryAfterMs = details.retry_after_ms ?? null;
    this.closeCode = details.closeCode ?? null;
  }
}

/** A random id of the wire's alphabet (A-Z a-z 0-9 _ -). */
export function newId(length = 16) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = new Uint8Array(length);
  crypto.getRandomValues(bytes);
  let out = "";
  for (const b of bytes) out += alphabet[b % alphabet.length];
  return out;
}

class Emitter {
  constructor() {
    this._handlers = new Map();
  }
  /** Call `fn` on every `event`; returns a function that stops it. */
  on(event, fn) {
    if (!this._handlers.has(event)) this._handlers.set(event, new Set());
    this._handlers.get(event).add(fn);
    return () => this._handlers.get(event)?.delete(fn);
  }
  _emit(event, payload) {
    for (const fn of this._handlers.get(event) ?? []) {
      try {
        fn(payload);
      } catch (err) {
        console.error("hypertab: handler failed", err);
      }
    }
  }
}

/**
 * Client-side pacing: two sliding windows, as the server keeps them (server/ratelimit):
 * messages per second on this connection, ops per minute for the principal. 0 = unlimited.
 */
export class Pacer {
  constructor(opsPerMinute = 0, burstPerSecond = 0) {
    this.opsPerMinute = opsPerMinute;
    this.burstPerSecond = burstPerSecond;
    this.messages = [];
    this.ops = [];
    this.opsUsed = 0;
  }
  reset(opsPerMinute, burstPerSecond) {
    this.opsPerMinute = opsPerMinute;
    // The server's burst window counts arrivals; leave a little room for jitter.
    this.burstPerSecond = burstPerSecond > 2 ? burstPerSecond - 1 : burstPerSecond;
  }
  /** Milliseconds to wait before a message costing `cost` ops fits (0: send now). */
  delay(cost, now) {
    const margin = 50; // arrivals at the server are not spaced exactly as sends
    while (this.messages.length && this.messages[0] <= now - 1000 - margin) this.messages.shift();
    while (this.ops.length && this.ops[0][0] <= now - 60000 - margin) {
      this.opsUsed -= this.ops.shift()[1];
    }
    let wait = 0;
    const burst = this.burstPerSecond;
    if (burst > 0 && this.messages.length + 1 > burst) {
      const oldest = this.messages[this.messages.length - burst];
      wait = Math.max(wait, oldest + 1000 + margin - now);
    }
    const limit = this.opsPerMinute;
    if (limit > 0 && cost > 0 && cost <= limit && this.opsUsed + cost > limit) {
      const need = this.opsUsed + cost - limit;
      let freed = 0;
      for (const [at, n] of this.ops) {
        freed += n;
        if (freed >= need) {
          wait = Math.max(wait, at + 60000 + margin - now);
          break;
        }
      }
    }
    return Math.max(0, wait);
  }
  record(cost, now) {
    if (this.burstPerSecond > 0) this.messages.push(now);
    if (this.opsPerMinute > 0 && cost > 0) {
      this.ops.push([now, cost]);
      this.opsUsed += cost;
    }
  }
}

/** Compare two rows by order key, then id (byte-wise for the ASCII keys the server makes). */
function compareRows(a, b) {
  if (a.order < b.order) return -1;
  if (a.order > b.order) return 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

function lowerBound(list, row) {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareRows(list[mid], row) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * A live table: the server's committed rows plus this client's pending edits.
 * Events: "change" {version, ops, by, local}, "reset" (a snapshot replaced the rows),
 * "pending" (optimistic state changed), "rejected" {error, ops}, "presence" (others moved),
 * "dropped" (the table was dropped), "unfollowed" (the key may no longer read it),
 * "loading" {rows} (a first snapshot is streaming in), "live" (subscribed: changes follow).
 */
export class Table extends Emitter {
  constructor(client, id) {
    super();
    this.client = client;
    this.id = id;
    this.name = "";
    this.version = 0;
    this.columns = []; // [{id, name, type, formula?}] in table order
    this.dropped = false;
    this.live = false;
    this._rows = new Map(); // id -> {id, order, values}
    this._ordered = []; // rows sorted by (order, id), pending inserts included
    this._view = null; // _ordered without optimistic deletes (lazily rebuilt)
    this._overlay = new Map(); // row id -> Map(column id -> {value, batch})
    this._pendingRows = new Map(); // row id -> {row, batch}
    this._hidden = new Map(); // row id -> batch (optimistic deletes)
    this._loading = null; // rows of a snapshot being received
    this._progressive = false;
    this.presence = new Map(); // session -> {subject, state}
    this._myPresence = null;
    this._presenceTimer = null;
    this._presenceSentAt = 0;
  }

  // --- reading ---------------------------------------------------------------------------

  /** The rows in table order (optimistic edits included): [{id, order, values, pending?}]. */
  rows() {
    if (this._view === null) {
      this._view = this._hidden.size
        ? this._ordered.filter((r) => !this._hidden.has(r.id))
        : this._ordered;
    }
    return this._view;
  }

  /** How many rows `rows()` holds. */
  get size() {
    return this.rows().length;
  }

  /** A cell's value as the user sees it (a pending edit wins), or null. */
  get(rowId, columnId) {
    const pending = this._overlay.get(rowId)?.get(columnId);
    if (pending !== undefined) return pending.value;
    const row = this._rows.get(rowId) ?? this._pendingRows.get(rowId)?.row;
    const value = row?.values[columnId];
    return value === undefined ? null : value;
  }

  /** Whether a cell has an edit not yet acknowledged. */
  isPending(rowId, columnId) {
    return this._overlay.get(rowId)?.has(columnId) ?? false;
  }

  /** The column with this id or name, or undefined. */
  column(key) {
    return this.columns.find((c) => c.id === key) ?? this.columns.find((c) => c.name === key);
  }

  /** Whether the row exists (committed or pending, not deleted). */
  has(rowId) {
    return (this._rows.has(rowId) || this._pendingRows.has(rowId)) && !this._hidden.has(rowId);
  }

  // --- writing (optimistic, batched per tick) ------------------------------------------

  /** Apply ops as one atomic batch (joined with other edits of this tick); resolves to the
   * version once durable, rejects with a HypertabError. */
  apply(ops) {
    return this.client._queue(this, ops);
  }

  /** Insert a row; `values` by column id or name. Resolves to the new row's id when durable.
   * `position`: {after: rowId} or {before: rowId}; none = the end. */
  async insert(values = {}, position = {}) {
    const id = position.id ?? newId();
    const row = { id, values: this._byId(values) };
    if (position.after) row.after = position.after;
    else if (position.before) row.before = position.before;
    await this.apply([{ type: "insert_rows", rows: [row] }]);
    return id;
  }

  /** Set cells of a row (`values` by column id or name; null clears a cell). */
  update(rowId, values) {
    return this.apply([{ type: "update_cells", row: rowId, values: this._byId(values) }]);
  }

  /** Delete rows by id. */
  delete(rowIds) {
    const rows = Array.isArray(rowIds) ? rowIds : [rowIds];
    return this.apply([{ type: "delete_rows", rows }]);
  }

  /** Move a row: {after: rowId} | {before: rowId} | {} (the end). */
  move(rowId, position = {}) {
    return this.apply([{ type: "move_row", row: rowId, ...position }]);
  }

  /** Add a column {name, type, formula?, id?}; resolves to its id. */
  async addColumn(spec) {
    const column = { id: spec.id ?? newId(12), name: spec.name, type: spec.type };
    if (spec.formula) column.formula = spec.formula;
    await this.apply([{ type: "add_column", column }]);
    return column.id;
  }

  renameColumn(columnId, name) {
    return this.apply([{ type: "rename_column", column: columnId, name }]);
  }

  dropColumn(columnId) {
    return this.apply([{ type: "drop_column", column: columnId }]);
  }

  setFormula(columnId, formula) {
    return this.apply([{ type: "set_formula", column: columnId, formula }]);
  }

  rename(name) {
    return this.apply([{ type: "rename_table", name }]);
  }

  /** Share ephemeral state (e.g. the selected cell) with the table's other subscribers.
   * Sends are throttled; only the latest state is sent. */
  setPresence(state) {
    this._myPresence = state;
    this._schedulePresence(150);
  }

  _schedulePresence(minGapMs) {
    if (this._presenceTimer !== null) return;
    const wait = Math.max(0, this._presenceSentAt + minGapMs - Date.now());
    this._presenceTimer = setTimeout(() => {
      this._presenceTimer = null;
      if (this._myPresence === null || !this.live) return;
      this._presenceSentAt = Date.now();
      this.client._sendNow({ type: "presence", table: this.id, state: this._myPresence });
    }, wait);
  }

  _byId(values) {
    const out = {};
    for (const [key, value] of Object.entries(values)) {
      out[this.column(key)?.id ?? key] = value;
    }
    return out;
  }

  // --- optimistic overlay ----------------------------------------------------------------

  _stage(batch) {
    let structural = false;
    for (const op of batch.ops) {
      switch (op.type) {
        case "update_cells": {
          let cells = this._overlay.get(op.row);
          if (!cells) this._overlay.set(op.row, (cells = new Map()));
          for (const [col, value] of Object.entries(op.values)) cells.set(col, { value, batch });
          break;
        }
        case "insert_rows":
          for (const spec of op.rows) {
            if (!spec.id || this._rows.has(spec.id)) continue;
            const row = {
              id: spec.id,
              order: this._provisionalOrder(spec),
              values: { ...spec.values },
              pending: true,
            };
            this._pendingRows.set(spec.id, { row, batch });
            this._insertOrdered(row);
            structural = true;
          }
          break;
        case "delete_rows":
          for (const id of op.rows) this._hidden.set(id, batch);
          structural = true;
          break;
        default:
          break;
      }
    }
    if (structural) this._view = null;
    this._emit("pending", { batch: batch.op });
  }

  _unstage(batch) {
    let structural = false;
    for (const op of batch.ops) {
      if (op.type === "update_cells") {
        const cells = this._overlay.get(op.row);
        if (!cells) continue;
        for (const col of Object.keys(op.values)) {
          if (cells.get(col)?.batch === batch) cells.delete(col);
        }
        if (cells.size === 0) this._overlay.delete(op.row);
      } else if (op.type === "insert_rows") {
        for (const spec of op.rows) {
          const pending = this._pendingRows.get(spec.id);
          if (pending && pending.batch === batch) {
            this._pendingRows.delete(spec.id);
            this._removeOrdered(pending.row);
            structural = true;
          }
        }
      } else if (op.type === "delete_rows") {
        for (const id of op.rows) {
          if (this._hidden.get(id) === batch) this._hidden.delete(id);
        }
        structural = true;
      }
    }
    if (structural) this._view = null;
  }

  _provisionalOrder(spec) {
    // Local only: sorts the row where the server will put it, until its real key arrives.
    const anchor = spec.after ?? null;
    if (anchor) {
      const row = this._rows.get(anchor) ?? this._pendingRows.get(anchor)?.row;
      if (row) return row.order + "\u0001";
    }
    if (spec.before) {
      const row = this._rows.get(spec.before) ?? this._pendingRows.get(spec.before)?.row;
      if (row) {
        const i = this._ordered.indexOf(row);
        return i > 0 ? this._ordered[i - 1].order + "\u0001" : "\u0000";
      }
    }
    const last = this._ordered[this._ordered.length - 1];
    return (last ? last.order : "") + "\uffff";
  }

  _insertOrdered(row) {
    this._ordered.splice(lowerBound(this._ordered, row), 0, row);
  }

  _removeOrdered(row) {
    let i = lowerBound(this._ordered, row);
    if (this._ordered[i] !== row) i = this._ordered.indexOf(row);
    if (i >= 0) this._ordered.splice(i, 1);
  }

  // --- server state ----------------------------------------------------------------------

  _snapshot(message, first) {
    if (first) {
      const info = message.table;
      this.name = info.name;
      this.version = info.version;
      this.columns = (info.columns ?? []).map((c) => ({ ...c }));
      this._rows = new Map();
      this._loading = [];
      // The first load shows rows as they stream in; a re-sync keeps the old view until
      // the new snapshot is whole (no flicker).
      this._progressive = this._ordered.length === 0 && this._pendingRows.size === 0;
      this.dropped = false;
    }
    const loading = this._loading;
    for (const row of message.rows) {
      // The decoded row object becomes the replica's row: no copy per row.
      if (row.values === undefined) row.values = {};
      this._rows.set(row.id, row);
      loading.push(row);
    }
    if (!message.last && this._progressive) {
      this._ordered = loading;
      this._view = null;
      this._emit("loading", { rows: loading.length });
    }
    if (message.last) {
      const ordered = loading;
      this._loading = null;
      let sorted = true; // the server sends rows in table order: usually nothing to sort
      for (let i = 1; i < ordered.length && sorted; i++) {
        sorted = compareRows(ordered[i - 1], ordered[i]) < 0;
      }
      for (const { row } of this._pendingRows.values()) {
        if (!this._rows.has(row.id)) {
          ordered.push(row);
          sorted = false;
        }
      }
      if (!sorted) ordered.sort(compareRows);
      this._ordered = ordered;
      this._view = null;
      this._emit("reset", { version: this.version });
    }
  }

  _change(change, local) {
    if (change.version <= this.version) return;
    for (const op of change.ops) this._applyOp(op);
    this.version = change.version;
    this._view = null;
    this._emit("change", {
      version: change.version,
      ops: change.ops,
      by: change.by ?? "",
      local,
    });
  }

  _applyOp(op) {
    switch (op.type) {
      case "create_table":
        this.name = op.name;
        this.columns = (op.columns ?? []).map((c) => ({ ...c }));
        break;
      case "rename_table":
        this.name = op.name;
        break;
      case "drop_table":
        this.dropped = true;
        this._rows.clear();
        this._ordered = [];
        this._emit("dropped", {});
        break;
      case "add_column":
        this.columns.push({ ...op.column });
        break;
      case "rename_column": {
        const col = this.columns.find((c) => c.id === op.column);
        if (col) col.name = op.name;
        break;
      }
      case "drop_column":
        this.columns = this.columns.filter((c) => c.id !== op.column);
        for (const row of this._rows.values()) delete row.values[op.column];
        break;
      case "set_formula": {
        const col = this.columns.find((c) => c.id === op.column);
        if (col) col.formula = op.formula;
        break;
      }
      case "insert_rows":
        for (const spec of op.rows) {
          if (!spec.id || spec.order == null) continue;
          const pending = this._pendingRows.get(spec.id);
          if (pending) {
            this._pendingRows.delete(spec.id);
            this._removeOrdered(pending.row);
          }
          const old = this._rows.get(spec.id);
          if (old) this._removeOrdered(old);
          const values = {};
          for (const [k, v] of Object.entries(spec.values ?? {})) if (v !== null) values[k] = v;
          const row = { id: spec.id, order: spec.order, values };
          this._rows.set(row.id, row);
          this._insertOrdered(row);
        }
        break;
      case "update_cells": {
        const row = this._rows.get(op.row);
        if (!row) break;
        for (const [k, v] of Object.entries(op.values)) {
          if (v === null) delete row.values[k];
          else row.values[k] = v;
        }
        break;
      }
      case "delete_rows":
        for (const id of op.rows) {
          const row = this._rows.get(id);
          if (row) {
            this._rows.delete(id);
            this._removeOrdered(row);
          }
          this._overlay.delete(id);
        }
        break;
      case "move_row": {
        const row = this._rows.get(op.row);
        if (row && op.order != null) {
          this._removeOrdered(row);
          row.order = op.order;
          this._insertOrdered(row);
        }
        break;
      }
      default:
        break;
    }
  }

  _presenceEvent(message) {
    const known = this.presence.has(message.session);
    if (message.state == null) this.presence.delete(message.session);
    else this.presence.set(message.session, { subject: message.subject, state: message.state });
    if (!known && message.state != null && this._myPresence !== null) {
      this._schedulePresence(300); // a newcomer: tell it where we are
    }
    this._emit("presence", { session: message.session });
  }
}

/**
 * One connection to a hub. `connect(url, {token | tokenProvider})` starts it.
 * status: "connecting" | "open" | "reconnecting" | "refused" | "revoked" | "expired" |
 * "closed". Events: "status" {status, detail}, "welcome" (the welcome message),
 * "ratelimited" {retryAfterMs}, "grants" {scopes, tables?, dropped} (the key was narrowed
 * while connected), "error" (a HypertabError without a request).
 */
export class Client extends Emitter {
  constructor(url, options = {}) {
    super();
    if (!url || /[?#]/.test(url)) {
      throw new HypertabError("bad_url", "the hub URL takes no query string or fragment");
    }
    if ((options.token == null) === (options.tokenProvider == null)) {
      throw new HypertabError("bad_options", "give exactly one of token or tokenProvider");
    }
    this.url = url;
    this.token = options.token ?? null;
    this.tokenProvider = options.tokenProvider ?? null;
    this.clientId = options.clientId ?? newId();
    this.maxBackoffMs = options.maxBackoffMs ?? 5000;
    this.probeUrl = options.probeUrl ?? null; // e.g. "/healthz": tells "refused" from "down"
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this.status = "connecting";
    this.welcome = null;
    this.connections = 0;
    this._ws = null;
    this._ids = 1;
    this._opSeq = 1;
    this._pending = new Map(); // request id -> {resolve, reject}
    this._batchRequests = new Map(); // request id -> batch
    this._unacked = new Map(); // op id -> batch, in send order
    this._tables = new Map();
    this._subscribing = new Map(); // request id -> {table, started}
    this._outbox = []; // [{message, cost}] waiting for the pacer
    this._pumpTimer = null;
    this._pacer = new Pacer();
    this._tick = new Map(); // table id -> {ops, waiters} of edits made in this tick
    this._tickScheduled = false;
    this._attempt = 0;
    this._reconnectTimer = null;
    this._upButRefused = 0; // unwelcomed attempts in a row while the hub answered
    this._refreshTimer = null;
    this._closed = false;
    this._readyWaiters = [];
    this._open();
  }

  /** Resolves when the connection is open (after `welcome`); rejects if it is refused. */
  ready() {
    if (this.status === "open") return Promise.resolve(this);
    if (this._closed || this.status === "closed") {
      return Promise.reject(new HypertabError("closed", "client closed"));
    }
    if (["refused", "revoked", "expired"].includes(this.status)) {
      return Promise.reject(new HypertabError("auth_failed", `credential ${this.status}`));
    }
    return new Promise((resolve, reject) => this._readyWaiters.push({ resolve, reject }));
  }

  /** Use a new credential (API key, or JWT) from now on; reconnects at once if the old one
   * was refused, revoked or expired. */
  setToken(token) {
    this.token = token;
    if (["refused", "revoked", "expired"].includes(this.status)) {
      clearTimeout(this._reconnectTimer);
      this._attempt = 0;
      this._setStatus("reconnecting");
      this._open();
    }
  }

  /** Close for good; pending edits are dropped (their promises reject). */
  close() {
    this._closed = true;
    clearTimeout(this._reconnectTimer);
    clearTimeout(this._refreshTimer);
    clearTimeout(this._pumpTimer);
    if (this._ws) this._ws.close(1000);
    this._failAll(new HypertabError("closed", "client closed"));
    this._setStatus("closed");
  }

  /** Unacknowledged batches (edits not yet durable), oldest first. */
  get unacknowledged() {
    return [...this._unacked.values()].map((b) => ({ table: b.table.id, op: b.op, ops: b.ops }));
  }

  // --- tables ----------------------------------------------------------------------------

  /** The tenant's tables: [{id, name, version, columns}]. */
  async listTables() {
    const answer = await this.request({ type: "list_tables" });
    return answer.tables;
  }

  /** Follow a table by id (else by name); resolves to its live Table once subscribed.
   * `options.created(table)` is called with the Table as soon as it exists (before its
   * snapshot arrives), e.g. to draw rows while a large snapshot streams in. */
  async table(key, options = {}) {
    const known = (table) => {
      options.created?.(table);
      return table;
    };
    if (this._tables.has(key)) return known(this._tables.get(key));
    const tables = await this.listTables();
    const info = tables.find((t) => t.id === key) ?? tables.find((t) => t.name === key);
    if (!info) throw new HypertabError("unknown_table", `no table ${JSON.stringify(key)}`);
    if (this._tables.has(info.id)) return known(this._tables.get(info.id));
    const table = new Table(this, info.id);
    this._tables.set(info.id, table);
    table.name = info.name;
    table.columns = (info.columns ?? []).map((c) => ({ ...c }));
    options.created?.(table);
    try {
      await this._subscribe(table);
    } catch (err) {
      this._tables.delete(info.id);
      throw err;
    }
    return table;
  }

  /** Create a table with columns [{name, type, formula?, id?}]; resolves to it, followed. */
  async createTable(name, columns = [], options = {}) {
    const id = options.id ?? newId();
    const defs = columns.map((c) => {
      const def = { id: c.id ?? newId(12), name: c.name, type: c.type };
      if (c.formula) def.formula = c.formula;
      return def;
    });
    const stub = { id, _stage() {}, _unstage() {}, _emit() {} };
    await this._queue(stub, [{ type: "create_table", name, columns: defs }]);
    return this.table(id);
  }

  /** Drop a table (needs schema:write). */
  async dropTable(id) {
    const stub = this._tables.get(id) ?? { id, _stage() {}, _unstage() {}, _emit() {} };
    await this._queue(stub, [{ type: "drop_table" }]);
  }

  /** Stop following a table. */
  async unsubscribe(table) {
    this._tables.delete(table.id);
    table.live = false;
    await this.request({ type: "unsubscribe", table: table.id });
  }

  /** Read a page of rows without subscribing (docs/protocol.md, Queries): `query` holds
   * `where`, `order_by`, `columns`, `after` (the previous page's `next`) and `limit`.
   * Resolves to {table, version, rows, next?}. */
  async query(table, query = {}) {
    const answer = await this.request({ type: "query", table, ...query });
    return { table: answer.table, version: answer.version, rows: answer.rows, next: answer.next };
  }

  /** Every row a query matches, following `next` page after page. */
  async queryAll(table, query = {}) {
    const rows = [];
    let after = query.after;
    for (;;) {
      const page = await this.query(table, { ...query, after });
      rows.push(...page.rows);
      if (!page.next) return rows;
      after = page.next;
    }
  }

  /** Round trip to the server. */
  async ping() {
    await this.request({ type: "ping" });
  }

  // --- requests --------------------------------------------------------------------------

  /** Send a request (an `id` is added) and resolve with its answer; errors reject with a
   * HypertabError carrying the wire code. */
  async request(message) {
    await this.ready();
    const id = this._ids++;
    return new Promise((resolve, reject) => {
      const request = { ...message, id };
      this._pending.set(id, { resolve, reject, request });
      this._send(request, 0);
    });
  }

  _subscribe(table) {
    return new Promise((resolve, reject) => {
      const go = () => {
        const id = this._ids++;
        this._subscribing.set(id, { table, started: false });
        const message = { type: "subscribe", id, table: table.id };
        if (table.live || table.version > 0) message.since = table.version;
        this._pending.set(id, { resolve, reject, request: message });
        table.live = false;
        this._send(message, 0);
      };
      if (this.status === "open") go();
      else this.ready().then(go, reject);
    });
  }

  // --- batches ---------------------------------------------------------------------------

  _queue(table, ops) {
    if (!Array.isArray(ops) || ops.length === 0) {
      return Promise.reject(new HypertabError("invalid_op", "a batch needs at least one op"));
    }
    if (this._closed) return Promise.reject(new HypertabError("closed", "client closed"));
    let entry = this._tick.get(table.id);
    if (!entry) this._tick.set(table.id, (entry = { table, ops: [], waiters: [] }));
    const start = entry.ops.length;
    entry.ops.push(...ops);
    const promise = new Promise((resolve, reject) => {
      entry.waiters.push({ start, end: entry.ops.length, resolve, reject });
    });
    if (!this._tickScheduled) {
      this._tickScheduled = true;
      queueMicrotask(() => this._flushTick());
    }
    return promise;
  }

  _flushTick() {
    this._tickScheduled = false;
    const entries = [...this._tick.values()];
    this._tick.clear();
    for (const { table, ops, waiters } of entries) {
      const chunks = this._split(ops);
      const batches = [];
      let offset = 0;
      for (const chunk of chunks) {
        const batch = {
          table,
          op: `${this.clientId.slice(0, 8)}-${this._opSeq++}`,
          ops: chunk,
          start: offset,
          settled: null,
          listeners: [],
        };
        offset += chunk.length;
        batches.push(batch);
        this._unacked.set(batch.op, batch);
        table._stage(batch);
        this._sendBatch(batch);
      }
      for (const w of waiters) {
        const mine = batches.filter((b) => b.start < w.end && b.start + b.ops.length > w.start);
        Promise.all(mine.map((b) => this._settled(b))).then(
          (versions) => w.resolve(Math.max(...versions)),
          w.reject,
        );
      }
    }
  }

  _settled(batch) {
    return new Promise((resolve, reject) => batch.listeners.push({ resolve, reject }));
  }

  _split(ops) {
    const limits = this.welcome?.limits;
    let max = limits?.max_ops_per_batch || 1000;
    if (limits?.ops_per_minute > 0) max = Math.min(max, limits.ops_per_minute);
    const maxBytes = Math.floor((limits?.max_frame_bytes || 1 << 20) * 0.9);
    const chunks = [];
    for (let i = 0; i < ops.length; i += max) chunks.push(ops.slice(i, i + max));
    const fitted = [];
    const fit = (chunk) => {
      if (chunk.length > 1 && JSON.stringify(chunk).length > maxBytes) {
        const half = chunk.length >> 1;
        fit(chunk.slice(0, half));
        fit(chunk.slice(half));
      } else fitted.push(chunk);
    };
    chunks.forEach(fit);
    return fitted;
  }

  _sendBatch(batch) {
    if (this.status !== "open") return; // resent by _resume once reconnected
    const id = this._ids++;
    batch.request = id;
    this._batchRequests.set(id, batch);
    const message = {
      type: "apply",
      id,
      table: batch.table.id,
      client: this.clientId,
      op: batch.op,
      ops: batch.ops,
    };
    this._send(message, batch.ops.length);
  }

  _settle(batch, error, version) {
    this._unacked.delete(batch.op);
    batch.table._unstage(batch);
    if (error) {
      batch.table._emit("rejected", { error, ops: batch.ops });
      batch.table._emit("pending", { batch: batch.op });
      for (const l of batch.listeners) l.reject(error);
    } else {
      batch.table._emit("pending", { batch: batch.op });
      for (const l of batch.listeners) l.resolve(version);
    }
  }

  // --- sending (paced) -------------------------------------------------------------------

  _send(message, cost) {
    this._outbox.push({ message, cost });
    this._pump();
  }

  _sendNow(message) {
    // Presence: never queued behind edits; dropped when the burst window is full.
    if (this.status !== "open" || this._pacer.delay(0, performance.now()) > 0) return;
    this._pacer.record(0, performance.now());
    this._ws.send(JSON.stringify(message));
  }

  _pump() {
    if (this._pumpTimer !== null) return;
    while (this._outbox.length && this.status === "open") {
      const { message, cost } = this._outbox[0];
      const now = performance.now();
      const wait = this._pacer.delay(cost, now);
      if (wait > 0) {
        // Held for long by the plan's per-minute window: say so, as for a server refusal.
        if (wait > 1000 && cost > 0) this._emit("ratelimited", { retryAfterMs: wait, paced: true });
        this._pumpTimer = setTimeout(() => {
          this._pumpTimer = null;
          this._pump();
        }, wait);
        return;
      }
      this._outbox.shift();
      this._pacer.record(cost, now);
      this._ws.send(JSON.stringify(message));
    }
  }

  // --- connection ------------------------------------------------------------------------

  async _credential() {
    if (this.tokenProvider) return await this.tokenProvider();
    return this.token;
  }

  async _open() {
    let token;
    try {
      token = await this._credential();
    } catch (err) {
      this._refused(new HypertabError("auth_failed", `token provider failed: ${err}`));
      return;
    }
    if (this._closed) return;
    let ws;
    try {
      ws = new this.WebSocket(this.url, [ENCODING, BEARER_PREFIX + token]);
    } catch (err) {
      // e.g. a token with characters a subprotocol cannot carry
      this._refused(new HypertabError("auth_failed", `cannot connect: ${err.message}`));
      return;
    }
    this._ws = ws;
    let welcomed = false;
    ws.onmessage = (event) => {
      if (this._ws !== ws) {
        ws.close(1000); // superseded by a newer attempt (setToken during a reconnect)
        return;
      }
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (!welcomed) {
        if (message.type !== "welcome") return;
        welcomed = true;
        this._welcome(message);
        return;
      }
      this._route(message);
    };
    ws.onclose = (event) => {
      if (this._ws !== ws) return;
      this._ws = null;
      this._closedWith(event.code, welcomed);
    };
  }

  _welcome(message) {
    this.welcome = message;
    this.connections += 1;
    this._attempt = 0;
    this._upButRefused = 0;
    const limits = message.limits ?? {};
    this._pacer.reset(limits.ops_per_minute ?? 0, limits.burst_per_second ?? 0);
    this._setStatus("open");
    this._emit("welcome", message);
    this._scheduleRefresh(message.expires_at);
    for (const w of this._readyWaiters.splice(0)) w.resolve(this);
    this._resume();
    this._pump();
  }

  _resume() {
    for (const table of this._tables.values()) {
      table.presence.clear();
      this._subscribe(table).catch((err) => this._emit("error", err));
    }
    for (const batch of this._unacked.values()) this._sendBatch(batch);
  }

  _closedWith(code, welcomed) {
    this._failRequests(
      new HypertabError("connection_lost", "connection lost", { closeCode: code }),
    );
    for (const table of this._tables.values()) {
      table.live = false;
      table.presence.clear();
    }
    clearTimeout(this._refreshTimer);
    if (this._closed) return;
    const advice = CLOSE_ADVICE[code] ?? "reconnect";
    if (advice === "stop") {
      this._failAll(new HypertabError("closed", `closed by the server (${code})`));
      this._setStatus("closed", { code });
      return;
    }
    if ((advice === "revoked" || advice === "expired") && !this.tokenProvider) {
      this._refused(null, advice, code);
      return;
    }
    if (!welcomed && this.probeUrl !== null) {
      // A refused handshake (401/403) and a hub that is down look alike to script (no HTTP
      // status reaches it): ask the hub's health endpoint which one it was.
      // Twice in a row: one refusal can be transient (a 429, a hub finishing its start).
      this._probe().then((up) => {
        this._upButRefused = up ? this._upButRefused + 1 : 0;
        if (this._upButRefused >= 2 && !this.tokenProvider) this._refused(null, "refused", code);
        else this._retry(advice);
      });
      return;
    }
    this._retry(advice);
  }

  async _probe() {
    try {
      const answer = await fetch(this.probeUrl, { cache: "no-store" });
      return answer.ok;
    } catch {
      return false;
    }
  }

  _retry(advice) {
    this._setStatus("reconnecting");
    // Jittered, and capped after the jitter: a hub back from a restart is found within
    // maxBackoffMs, never 1.5 times that.
    const base = 100 * 2 ** Math.min(this._attempt, 16);
    let delay = Math.min(this.maxBackoffMs, base * (0.5 + Math.random()));
    if (advice === "backoff") delay = Math.max(delay, 2000);
    this._attempt += 1;
    this._reconnectTimer = setTimeout(() => this._open(), delay);
  }

  _refused(error, status = "refused", code = null) {
    this._setStatus(status, { code });
    const why = {
      expired: "the credential expired",
      revoked: "the credential was revoked",
      refused: "the hub refused the credential",
    };
    const err = error ?? new HypertabError("auth_failed", why[status], { closeCode: code });
    for (const w of this._readyWaiters.splice(0)) w.reject(err);
  }

  _scheduleRefresh(expiresAt) {
    clearTimeout(this._refreshTimer);
    if (!this.tokenProvider || !expiresAt) return;
    const left = expiresAt * 1000 - Date.now();
    const wait = Math.max(1000, Math.min(left * 0.8, left - 30000));
    this._refreshTimer = setTimeout(() => this._refresh(), wait);
  }

  async _refresh() {
    try {
      const token = await this.tokenProvider();
      const answer = await this.request({ type: "auth", token });
      this._scheduleRefresh(answer.expires_at);
    } catch (err) {
      this._emit("error", err);
      this._refreshTimer = setTimeout(() => this._refresh(), 5000);
    }
  }

  _setStatus(status, detail = {}) {
    if (this.status === status && status !== "reconnecting") return;
    this.status = status;
    this._emit("status", { status, ...detail });
  }

  _failRequests(error) {
    const pending = this._pending;
    this._pending = new Map();
    for (const p of pending.values()) p.reject(error);
    this._subscribing.clear(); // followed tables are re-subscribed by _resume
    this._batchRequests.clear(); // the batches stay in _unacked, to be resent
    this._outbox = []; // batches are resent from _unacked; other requests failed above
    clearTimeout(this._pumpTimer);
    this._pumpTimer = null;
  }

  _failAll(error) {
    this._failRequests(error);
    for (const p of this._pending.values()) p.reject(error);
    this._pending.clear();
    for (const batch of [...this._unacked.values()]) this._settle(batch, error);
    for (const w of this._readyWaiters.splice(0)) w.reject(error);
  }

  // --- receiving -------------------------------------------------------------------------

  _route(message) {
    switch (message.type) {
      case "changes": {
        const table = this._tables.get(message.table);
        if (!table) return;
        for (const change of message.changes) {
          if (change.version > table.version + 1) {
            // Versions skipped (a hub never does that; we do not trust it): resubscribe
            // from the version the replica has, so the server replays what is missing,
            // rather than apply this and lose those between. Until then, the replay rules.
            if (table.live) this._subscribe(table).catch(() => {});
            return;
          }
          table._change(change, change.client === this.clientId);
        }
        return;
      }
      case "ack": {
        const batch = this._batchRequests.get(message.id);
        if (!batch) return;
        this._batchRequests.delete(message.id);
        this._settle(batch, null, message.version);
        return;
      }
      case "snapshot": {
        const sub = this._subscribing.get(message.id);
        if (!sub) return;
        sub.table._snapshot(message, !sub.started);
        sub.started = true;
        return;
      }
      case "subscribed": {
        const sub = this._subscribing.get(message.id);
        this._subscribing.delete(message.id);
        if (sub) {
          sub.table.version = Math.max(sub.table.version, message.version);
          sub.table.live = true;
          sub.table._emit("live", { version: sub.table.version });
          if (sub.table._myPresence !== null) sub.table._schedulePresence(0);
        }
        this._resolve(message.id, sub?.table ?? message);
        return;
      }
      case "presence_event": {
        this._tables.get(message.table)?._presenceEvent(message);
        return;
      }
      case "grants_changed": {
        // The key was narrowed while connected: new scopes now, some tables unfollowed.
        if (this.welcome) {
          this.welcome.scopes = message.scopes;
          if (message.tables) this.welcome.tables = message.tables;
          else delete this.welcome.tables;
        }
        for (const id of message.dropped ?? []) {
          const table = this._tables.get(id);
          if (!table) continue;
          this._tables.delete(id);
          table.live = false;
          table._emit("unfollowed", { reason: "forbidden" });
        }
        this._emit("grants", message);
        return;
      }
      case "error": {
        this._error(message);
        return;
      }
      default:
        if (typeof message.id === "number") this._resolve(message.id, message);
    }
  }

  _error(message) {
    const error = new HypertabError(message.code, message.message, message);
    const batch = message.id != null ? this._batchRequests.get(message.id) : undefined;
    if (batch) {
      this._batchRequests.delete(message.id);
      if (message.code === "rate_limited") {
        const wait = message.retry_after_ms ?? 100;
        this._emit("ratelimited", { retryAfterMs: wait });
        setTimeout(() => {
          if (this._unacked.has(batch.op)) this._sendBatch(batch);
        }, wait);
        return;
      }
      if (message.code === "unavailable") return; // shutting down: resent after reconnecting
      if (message.code === "internal" && (batch.retries = (batch.retries ?? 0) + 1) <= 3) {
        // Nothing was applied; the same ids make a retry safe.
        setTimeout(() => {
          if (this._unacked.has(batch.op)) this._sendBatch(batch);
        }, 500 * batch.retries);
        return;
      }
      this._settle(batch, error);
      return;
    }
    if (message.code === "rate_limited") {
      // Not handled by the server, so safe to send again: a request after the wait, and
      // presence (no id, best effort) not at all.
      const again = message.id != null ? this._pending.get(message.id)?.request : undefined;
      const wait = message.retry_after_ms ?? 100;
      if (again) setTimeout(() => this._pending.has(again.id) && this._send(again, 0), wait);
      if (again || message.id == null) {
        this._emit("ratelimited", { retryAfterMs: wait });
        return;
      }
    }
    if (message.id != null) {
      this._subscribing.delete(message.id);
      const pending = this._pending.get(message.id);
      if (pending) {
        this._pending.delete(message.id);
        pending.reject(error);
        return;
      }
    }
    this._emit("error", error);
  }

  _resolve(id, value) {
    const pending = this._pending.get(id);
    if (pending) {
      this._pending.delete(id);
      pending.resolve(value);
    }
  }
}

/** Connect to a hub: `connect("wss://host/v1/ws", {token})` or `{tokenProvider}`.
 * Returns the Client at once; `await client.ready()` waits for `welcome`. */
export function connect(url, options) {
  return new Client(url, options);
}

/** The WebSocket URL of the hub that served the current page. */
export function pageHubUrl(location = globalThis.location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/v1/ws`;
}
