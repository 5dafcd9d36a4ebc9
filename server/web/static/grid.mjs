// The spreadsheet grid: virtualised rows, keyboard and mouse selection, typed editors,
// TSV copy and paste, undo and redo of the user's own edits, peers' selections.
//
// How it works
// ------------
// Only the rows in view (plus a margin) exist in the DOM: a sizer gives the body its full
// height and the visible rows are absolutely positioned, refilled on scroll and on every
// change of the table (coalesced into one animation frame). Cell text is always set with
// `textContent`, never parsed as HTML. Every edit goes through the Table of
// `hypertab.mjs` (optimistic, batched per tick), and the user's own edits are recorded as
// undo entries whose inverse ops are computed from the values seen before the edit.

import { newId } from "./hypertab.mjs";

const ROW_H = 26;
const NUM_W = 56;
const DEFAULT_W = 140;
const OVERSCAN = 8;
const ERROR_VALUE = /^#(DIV\/0!|VALUE!|NAME\?|REF!|CYCLE!|LIMIT!|NUM!|N\/A|[A-Z0-9/]+[!?])$/;

/** Parse TSV as spreadsheets put it on the clipboard (quoted fields may hold tabs,
 * newlines and doubled quotes). Returns rows of strings. */
export function parseTsv(text) {
  const rows = [];
  let row = [];
  let field = "";
  let i = 0;
  let quoted = false;
  let atStart = true;
  while (i < text.length) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i += 2;
        continue;
      }
      if (ch === '"') {
        quoted = false;
        i += 1;
        continue;
      }
      field += ch;
      i += 1;
      continue;
    }
    if (ch === '"' && atStart) {
      quoted = true;
      atStart = false;
      i += 1;
      continue;
    }
    if (ch === "\t") {
      row.push(field);
      field = "";
      atStart = true;
    } else if (ch === "\n" || ch === "\r") {
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
      atStart = true;
      if (ch === "\r" && text[i + 1] === "\n") i += 1;
    } else {
      field += ch;
      atStart = false;
    }
    i += 1;
  }
  if (field !== "" || row.length) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

/** Rows of strings as TSV (fields with tabs, newlines or quotes are quoted). */
export function toTsv(rows) {
  const quote = (s) => (/[\t\n\r"]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s);
  return rows.map((r) => r.map(quote).join("\t")).join("\n");
}

/** A cell value as display text. */
export function cellText(value, type) {
  if (type === "boolean") return value ? "☑" : "☐"; // an empty checkbox is unchecked
  if (value === null || value === undefined) return "";
  if (typeof value === "object") return JSON.stringify(value);
  if (type === "datetime" && typeof value === "string") return value.replace("T", " ");
  return String(value);
}

/** A cell value as clipboard text (what another spreadsheet should receive). */
function clipText(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "boolean") return value ? "TRUE" : "FALSE";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/** Text typed or pasted into a cell of `type` as a wire value; throws Error with a
 * message a person can act on. Empty text clears the cell. */
export function parseInput(text, type) {
  const s = text.trim();
  if (type === "text") return text === "" ? null : text;
  if (s === "") return null;
  switch (type) {
    case "number": {
      const n = Number(s.replaceAll(",", ""));
      if (!Number.isFinite(n)) throw new Error(`"${s}" is not a number`);
      return n;
    }
    case "boolean": {
      const v = s.toLowerCase();
      if (["true", "1", "yes", "y", "x", "☑"].includes(v)) return true;
      if (["false", "0", "no", "n", "☐"].includes(v)) return false;
      throw new Error(`"${s}" is not TRUE or FALSE`);
    }
    case "datetime": {
      const ok = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/;
      if (!ok.test(s)) throw new Error(`"${s}" is not an ISO-8601 date (2024-05-31T14:30)`);
      return s.replace(" ", "T");
    }
    case "json":
      try {
        return JSON.parse(s);
      } catch {
        return text;
      }
    default:
      return text;
  }
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * The grid over one Table. `options`: {readOnly, onMessage(text, kind), onSelect(cell),
 * widths (Map column id -> px, persisted by the caller)}.
 */
export class Grid {
  constructor(root, table, options = {}) {
    this.root = root;
    this.table = table;
    this.options = options;
    this.readOnly = !!options.readOnly;
    this.head = root.querySelector("#grid-head");
    this.body = root.querySelector("#grid-body");
    this.sizer = root.querySelector("#grid-sizer");
    this.rowsEl = root.querySelector("#grid-rows");
    this.overlay = root.querySelector("#grid-overlay");
    this.widths = options.widths ?? new Map();
    this.sel = { row: 0, col: 0 }; // indices into rows() / columns
    this.anchor = null; // other corner of a range, or null
    this.selRowId = null;
    this.editor = null;
    this.undoStack = [];
    this.redoStack = [];
    this.peers = new Map();
    this._frame = 0;
    this._rowPool = [];
    this._offs = [
      table.on("change", () => this.render()),
      table.on("reset", () => this.render()),
      table.on("pending", () => this.render()),
      table.on("presence", () => this.render()),
      table.on("loading", () => this.render()),
      table.on("live", () => this.render()),
    ];
    this._listeners = [];
    this._listen(this.body, "scroll", () => this.render());
    this._listen(root, "keydown", (e) => this._keydown(e));
    this._listen(this.body, "mousedown", (e) => this._mousedown(e));
    this._listen(this.body, "dblclick", (e) => this._dblclick(e));
    this._listen(document, "copy", (e) => this._copy(e));
    this._listen(document, "paste", (e) => this._paste(e));
    this._listen(window, "resize", () => this.render());
    this.root.hidden = false;
    this.render();
    this.root.focus();
  }

  destroy() {
    this._closeEditor(false);
    for (const off of this._offs) off();
    for (const [target, type, fn] of this._listeners) target.removeEventListener(type, fn);
    cancelAnimationFrame(this._frame);
    this.head.replaceChildren();
    this.rowsEl.replaceChildren();
    this.overlay.replaceChildren();
  }

  _listen(target, type, fn) {
    target.addEventListener(type, fn);
    this._listeners.push([target, type, fn]);
  }

  get columns() {
    return this.table.columns;
  }

  width(column) {
    return this.widths.get(column.id) ?? DEFAULT_W;
  }

  colLeft(index) {
    let x = NUM_W;
    for (let i = 0; i < index; i++) x += this.width(this.columns[i]);
    return x;
  }

  /** The selected cell: {rowId, columnId, row, col}, or null when the table is empty. */
  selected() {
    const rows = this.table.rows();
    this._syncSelection(rows);
    const row = rows[this.sel.row];
    const column = this.columns[this.sel.col];
    if (!row || !column) return null;
    return { rowId: row.id, columnId: column.id, row: this.sel.row, col: this.sel.col };
  }

  /** The selected rectangle: {top, bottom, left, right} (inclusive indices). */
  range() {
    const a = this.anchor ?? this.sel;
    return {
      top: Math.min(a.row, this.sel.row),
      bottom: Math.max(a.row, this.sel.row),
      left: Math.min(a.col, this.sel.col),
      right: Math.max(a.col, this.sel.col),
    };
  }

  _syncSelection(rows) {
    // Keep the selection on its row when rows are inserted or removed above it.
    if (this.selRowId !== null && rows[this.sel.row]?.id !== this.selRowId) {
      const i = rows.findIndex((r) => r.id === this.selRowId);
      if (i >= 0) this.sel.row = i;
    }
    this.sel.row = Math.max(0, Math.min(this.sel.row, rows.length - 1));
    this.sel.col = Math.max(0, Math.min(this.sel.col, this.columns.length - 1));
    this.selRowId = rows[this.sel.row]?.id ?? null;
  }

  // --- rendering -------------------------------------------------------------------------

  render() {
    if (this._frame) return;
    this._frame = requestAnimationFrame(() => {
      this._frame = 0;
      this._draw();
    });
  }

  _draw() {
    const rows = this.table.rows();
    const columns = this.columns;
    this._syncSelection(rows);
    const total = NUM_W + columns.reduce((sum, c) => sum + this.width(c), 0);
    this.sizer.style.height = `${rows.length * ROW_H}px`;
    this.sizer.style.width = `${total}px`;
    this._drawHead(columns, total);
    const top = this.body.scrollTop;
    const height = this.body.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    const last = Math.min(rows.length, Math.ceil((top + height) / ROW_H) + OVERSCAN);
    const range = this.range();
    const needed = last - first;
    while (this._rowPool.length < needed) {
      const rowEl = el("div", "row");
      rowEl.appendChild(el("div", "cell num"));
      this._rowPool.push(rowEl);
      this.rowsEl.appendChild(rowEl);
    }
    for (let k = 0; k < this._rowPool.length; k++) {
      const rowEl = this._rowPool[k];
      const index = first + k;
      if (index >= last) {
        rowEl.hidden = true;
        continue;
      }
      rowEl.hidden = false;
      const row = rows[index];
      rowEl.style.top = `${index * ROW_H}px`;
      rowEl.dataset.row = String(index);
      rowEl.dataset.id = row.id;
      rowEl.classList.toggle("pending", !!row.pending);
      const cells = rowEl.children;
      cells[0].textContent = String(index + 1);
      cells[0].classList.toggle("sel", index >= range.top && index <= range.bottom);
      while (rowEl.children.length - 1 > columns.length) rowEl.lastChild.remove();
      for (let c = 0; c < columns.length; c++) {
        let cell = cells[c + 1];
        if (!cell) {
          cell = el("div", "cell");
          rowEl.appendChild(cell);
        }
        const column = columns[c];
        const value = this.table.get(row.id, column.id);
        const text = cellText(value, column.type);
        if (cell.textContent !== text) cell.textContent = text;
        cell.style.width = `${this.width(column)}px`;
        cell.dataset.col = String(c);
        const isError =
          column.type === "formula" && typeof value === "string" && ERROR_VALUE.test(value);
        cell.className =
          `cell t-${column.type}` +
          (column.type === "formula" && typeof value === "number" ? " t-number-like" : "") +
          (isError ? " error" : "") +
          (this.table.isPending(row.id, column.id) ? " pending" : "") +
          (this.anchor &&
          index >= range.top &&
          index <= range.bottom &&
          c >= range.left &&
          c <= range.right
            ? " in-range"
            : "");
      }
    }
    this._drawOverlay(rows, first, last);
    // bench/browser.py: navigation -> first rows drawn, and -> the whole table live.
    if (!this._drawnOnce && rows.length) {
      this._drawnOnce = true;
      performance.mark("hypertab-grid-drawn");
    }
    if (!this._completeOnce && this.table.live && this.table._loading === null) {
      this._completeOnce = true;
      performance.mark("hypertab-grid-complete");
    }
  }

  _drawHead(columns, total) {
    let hrow = this.head.firstChild;
    if (!hrow) {
      hrow = el("div", "hrow");
      this.head.appendChild(hrow);
    }
    hrow.style.width = `${total + 40}px`;
    hrow.style.transform = `translateX(${-this.body.scrollLeft}px)`;
    const wanted = columns.length + 1;
    while (hrow.children.length < wanted) hrow.appendChild(el("div", "hcell"));
    while (hrow.children.length > wanted) hrow.lastChild.remove();
    const corner = hrow.children[0];
    corner.className = "hcell num";
    corner.textContent = "";
    for (let c = 0; c < columns.length; c++) {
      const column = columns[c];
      const h = hrow.children[c + 1];
      const key = `${column.id}|${column.name}|${column.type}|${column.formula ?? ""}`;
      if (h.dataset.key !== key) {
        h.dataset.key = key;
        h.replaceChildren();
        h.appendChild(document.createTextNode(column.name));
        h.appendChild(
          el("span", "type", column.type === "formula" ? `= ${column.formula}` : column.type),
        );
        const grip = el("span", "resize");
        grip.addEventListener("mousedown", (e) => this._startResize(e, column));
        h.appendChild(grip);
        h.title =
          column.type === "formula"
            ? `${column.name} = ${column.formula}`
            : `${column.name} (${column.type})`;
      }
      h.dataset.col = String(c);
      h.style.width = `${this.width(column)}px`;
      h.classList.toggle("selected-col", c === this.sel.col);
    }
  }

  _drawOverlay(rows, first, last) {
    const parts = [];
    if (rows.length && this.columns.length) {
      const { top, bottom, left, right } = this.range();
      const box = el("div", "selection");
      this._place(box, top, left, bottom, right);
      parts.push(box);
    }
    for (const [session, peer] of this.table.presence) {
      const state = peer.state ?? {};
      if (typeof state.row !== "string" || typeof state.col !== "string") continue;
      const index = this._rowIndex(rows, state.row, state.rowIndex);
      const col = this.columns.findIndex((c) => c.id === state.col);
      if (index < first || index >= last || col < 0) continue;
      const color = /^#[0-9a-fA-F]{6}$/.test(state.color ?? "") ? state.color : "#e37400";
      const box = el("div", "peer");
      box.dataset.session = session;
      box.style.borderColor = color;
      this._place(box, index, col, index, col);
      const tag = el("span", "tag", String(state.name || peer.subject).slice(0, 40));
      tag.style.background = color;
      box.appendChild(tag);
      parts.push(box);
    }
    this.overlay.replaceChildren(...parts);
    if (this.editor) this._placeEditor();
  }

  _rowIndex(rows, id, hint) {
    if (typeof hint === "number" && rows[hint]?.id === id) return hint;
    return rows.findIndex((r) => r.id === id);
  }

  _place(node, top, left, bottom, right) {
    const x = this.colLeft(left);
    let w = 0;
    for (let c = left; c <= right; c++) w += this.width(this.columns[c]);
    node.style.left = `${x - 1}px`;
    node.style.top = `${top * ROW_H - 1}px`;
    node.style.width = `${w + 1}px`;
    node.style.height = `${(bottom - top + 1) * ROW_H + 1}px`;
  }

  // --- selection ---------------------------------------------------------------------

  select(row, col, extend = false) {
    const rows = this.table.rows();
    row = Math.max(0, Math.min(row, rows.length - 1));
    col = Math.max(0, Math.min(col, this.columns.length - 1));
    if (extend) this.anchor ??= { ...this.sel };
    else this.anchor = null;
    this.sel = { row, col };
    this.selRowId = rows[row]?.id ?? null;
    this._scrollIntoView(row, col);
    this.render();
    const cell = this.selected();
    this.options.onSelect?.(cell);
  }

  _scrollIntoView(row, col) {
    const top = row * ROW_H;
    const view = this.body;
    if (top < view.scrollTop) view.scrollTop = top;
    else if (top + ROW_H > view.scrollTop + view.clientHeight) {
      view.scrollTop = top + ROW_H - view.clientHeight;
    }
    if (col >= 0 && this.columns[col]) {
      const left = this.colLeft(col);
      const right = left + this.width(this.columns[col]);
      if (left - NUM_W < view.scrollLeft) view.scrollLeft = left - NUM_W;
      else if (right > view.scrollLeft + view.clientWidth)
        view.scrollLeft = right - view.clientWidth;
    }
  }

  _cellAt(event) {
    const rect = this.body.getBoundingClientRect();
    const x = event.clientX - rect.left + this.body.scrollLeft;
    const y = event.clientY - rect.top + this.body.scrollTop;
    const row = Math.floor(y / ROW_H);
    let col = -1;
    let left = NUM_W;
    for (let c = 0; c < this.columns.length; c++) {
      const w = this.width(this.columns[c]);
      if (x >= left && x < left + w) {
        col = c;
        break;
      }
      left += w;
    }
    return { row, col, x };
  }

  _mousedown(event) {
    if (event.button !== 0 || event.target.closest?.(".editor")) return;
    const { row, col, x } = this._cellAt(event);
    if (row >= this.table.size) {
      this._closeEditor(true);
      this.root.focus(); // an empty table still takes a paste
      event.preventDefault();
      return;
    }
    this._closeEditor(true);
    if (col < 0 && x < NUM_W) {
      this.select(row, 0);
      this.anchor = { row, col: this.columns.length - 1 };
      this.render();
    } else if (col >= 0) {
      this.select(row, col, event.shiftKey);
      const column = this.columns[col];
      if (
        column.type === "boolean" &&
        !this.readOnly &&
        event.target.classList?.contains("t-boolean")
      ) {
        this._toggleBoolean();
      }
      const move = (e) => {
        const at = this._cellAt(e);
        if (at.col >= 0 && (at.row !== this.sel.row || at.col !== this.sel.col)) {
          this.anchor ??= { row, col };
          this.sel = {
            row: Math.max(0, Math.min(at.row, this.table.size - 1)),
            col: at.col,
          };
          this.render();
        }
      };
      const up = () => {
        window.removeEventListener("mousemove", move);
        window.removeEventListener("mouseup", up);
      };
      window.addEventListener("mousemove", move);
      window.addEventListener("mouseup", up);
    }
    event.preventDefault();
    this.root.focus();
  }

  _dblclick(event) {
    const { row, col } = this._cellAt(event);
    if (row < this.table.size && col >= 0) {
      this.select(row, col);
      this.startEdit();
    }
  }

  _startResize(event, column) {
    event.preventDefault();
    event.stopPropagation();
    const startX = event.clientX;
    const start = this.width(column);
    const move = (e) => {
      this.widths.set(column.id, Math.max(40, Math.min(800, start + e.clientX - startX)));
      this.render();
    };
    const up = () => {
      window.removeEventListener("mousemove", move);
      window.removeEventListener("mouseup", up);
      this.options.onResize?.(this.widths);
    };
    window.addEventListener("mousemove", move);
    window.addEventListener("mouseup", up);
  }

  // --- keyboard ----------------------------------------------------------------------

  _keydown(event) {
    if (event.target.closest?.(".editor")) return; // the editor handles its own keys
    if (event.target !== this.root) return;
    const mod = event.ctrlKey || event.metaKey;
    const key = event.key;
    if (mod && (key === "z" || key === "Z")) {
      event.preventDefault();
      if (event.shiftKey) this.redo();
      else this.undo();
      return;
    }
    if (mod && (key === "y" || key === "Y")) {
      event.preventDefault();
      this.redo();
      return;
    }
    const { row, col } = this.sel;
    const lastRow = this.table.size - 1;
    const lastCol = this.columns.length - 1;
    if (mod) {
      // Ctrl+arrows and Ctrl+Home/End jump to the edges; Ctrl+A selects everything.
      const jumps = {
        ArrowUp: [0, col],
        ArrowDown: [lastRow, col],
        ArrowLeft: [row, 0],
        ArrowRight: [row, lastCol],
        Home: [0, 0],
        End: [lastRow, lastCol],
      };
      if (key in jumps) {
        event.preventDefault();
        this.select(...jumps[key], event.shiftKey);
      } else if (key === "a" || key === "A") {
        event.preventDefault();
        this.select(0, 0);
        this.anchor = { row: 0, col: 0 };
        this.sel = { row: lastRow, col: lastCol };
        this.render();
      }
      return; // copy and paste arrive as their own events
    }
    const page = Math.max(1, Math.floor(this.body.clientHeight / ROW_H) - 1);
    const moves = {
      ArrowUp: [row - 1, col],
      ArrowDown: [row + 1, col],
      ArrowLeft: [row, col - 1],
      ArrowRight: [row, col + 1],
      PageUp: [row - page, col],
      PageDown: [row + page, col],
      Home: [row, 0],
      End: [row, this.columns.length - 1],
    };
    if (key in moves) {
      event.preventDefault();
      this.select(...moves[key], event.shiftKey);
      return;
    }
    if (key === "Tab") {
      event.preventDefault();
      this.select(row, col + (event.shiftKey ? -1 : 1));
      return;
    }
    if (key === "Enter" || key === "F2") {
      event.preventDefault();
      this.startEdit();
      return;
    }
    if (key === "Escape") {
      this.anchor = null;
      this.render();
      return;
    }
    if (key === "Delete" || key === "Backspace") {
      event.preventDefault();
      this.clearRange();
      return;
    }
    if (key === " " && this.columns[col]?.type === "boolean") {
      event.preventDefault();
      this._toggleBoolean();
      return;
    }
    if (key.length === 1 && !event.altKey) {
      event.preventDefault();
      this.startEdit(key);
    }
  }

  // --- editing -----------------------------------------------------------------------

  _editable(column) {
    if (this.readOnly) {
      this.options.onMessage?.("This key is read-only: it cannot change cells.", "info");
      return false;
    }
    if (column.type === "formula") {
      this.options.onMessage?.(
        `${column.name} is computed by its formula (${column.formula}); edit the formula instead.`,
        "info",
      );
      return false;
    }
    return true;
  }

  /** Open the editor on the selected cell (`initial`: the first character typed). */
  startEdit(initial) {
    const cell = this.selected();
    if (!cell) return;
    const column = this.columns[cell.col];
    if (!this._editable(column)) return;
    if (column.type === "boolean") {
      this._toggleBoolean();
      return;
    }
    const input = document.createElement("input");
    input.className = "editor";
    input.spellcheck = false;
    const value = this.table.get(cell.rowId, cell.columnId);
    if (column.type === "datetime") {
      input.type = initial === undefined ? "datetime-local" : "text";
      input.step = "1";
    } else {
      input.type = "text";
      if (column.type === "number") input.inputMode = "decimal";
    }
    const current =
      value === null ? "" : typeof value === "object" ? JSON.stringify(value) : String(value);
    if (input.type === "datetime-local") {
      input.value = current.replace(/(Z|[+-]\d{2}:?\d{2})$/, "").slice(0, 19);
    } else {
      input.value = initial ?? current;
    }
    this.editor = { input, rowId: cell.rowId, columnId: cell.columnId, col: cell.col };
    this.body.appendChild(input);
    this._placeEditor();
    input.focus();
    if (initial === undefined && input.type === "text") input.select();
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        this._closeEditor(true);
        this.select(this.sel.row + (e.shiftKey ? -1 : 1), this.sel.col);
      } else if (e.key === "Tab") {
        e.preventDefault();
        this._closeEditor(true);
        this.select(this.sel.row, this.sel.col + (e.shiftKey ? -1 : 1));
      } else if (e.key === "Escape") {
        e.preventDefault();
        this._closeEditor(false);
      } else if (initial !== undefined && (e.key === "ArrowUp" || e.key === "ArrowDown")) {
        e.preventDefault();
        this._closeEditor(true);
        this.select(this.sel.row + (e.key === "ArrowUp" ? -1 : 1), this.sel.col);
      }
    });
    input.addEventListener("blur", () => {
      if (this.editor?.input === input) this._closeEditor(true, false);
    });
  }

  _placeEditor() {
    const { input, rowId, col } = this.editor;
    const rows = this.table.rows();
    const index = this._rowIndex(rows, rowId, this.sel.row);
    if (index < 0) {
      this._closeEditor(false);
      return;
    }
    input.style.left = `${this.colLeft(col) - 1}px`;
    input.style.top = `${index * ROW_H - 1}px`;
    input.style.width = `${Math.max(this.width(this.columns[col]) + 1, 160)}px`;
    input.style.height = `${ROW_H + 1}px`;
  }

  _closeEditor(commit, refocus = true) {
    const editor = this.editor;
    if (!editor) return;
    this.editor = null;
    editor.input.remove();
    if (refocus) this.root.focus();
    if (!commit) return;
    const column = this.table.column(editor.columnId);
    if (!column || !this.table.has(editor.rowId)) return;
    let value;
    try {
      value = parseInput(editor.input.value, column.type);
    } catch (err) {
      this.options.onMessage?.(`${column.name}: ${err.message}`, "error");
      return;
    }
    const before = this.table.get(editor.rowId, editor.columnId);
    if (JSON.stringify(before) === JSON.stringify(value)) return;
    this.setCells([{ row: editor.rowId, values: { [editor.columnId]: value } }]);
  }

  _toggleBoolean() {
    const cell = this.selected();
    if (!cell || !this._editable(this.columns[cell.col])) return;
    const value = this.table.get(cell.rowId, cell.columnId);
    this.setCells([{ row: cell.rowId, values: { [cell.columnId]: !value } }]);
  }

  /** Clear every writable cell of the selected range (one batch). */
  clearRange() {
    if (this.readOnly) return this._editable(this.columns[0] ?? {});
    const rows = this.table.rows();
    const { top, bottom, left, right } = this.range();
    const edits = [];
    for (let r = top; r <= bottom && r < rows.length; r++) {
      const values = {};
      for (let c = left; c <= right; c++) {
        const column = this.columns[c];
        if (column && column.type !== "formula" && this.table.get(rows[r].id, column.id) !== null) {
          values[column.id] = null;
        }
      }
      if (Object.keys(values).length) edits.push({ row: rows[r].id, values });
    }
    if (edits.length) this.setCells(edits);
  }

  /** Set cells as one undoable edit: edits = [{row, values}]. */
  setCells(edits) {
    const before = edits.map(({ row, values }) => ({
      row,
      values: Object.fromEntries(Object.keys(values).map((k) => [k, this.table.get(row, k)])),
    }));
    this._record({ kind: "cells", before, after: edits, inserted: [] });
    this._send(this._cellOps(edits));
  }

  _cellOps(edits) {
    return edits
      .filter(({ row }) => this.table.has(row))
      .map(({ row, values }) => ({ type: "update_cells", row, values }));
  }

  _send(ops) {
    if (!ops.length) return Promise.resolve();
    return this.table.apply(ops).catch((err) => {
      this.options.onMessage?.(describe(err, this.table), "error");
    });
  }

  // --- rows --------------------------------------------------------------------------

  /** Insert an empty row below the selection (or at the end). */
  insertRow(values = {}) {
    if (!this._editable({ type: "text" })) return;
    const cell = this.selected();
    const spec = { id: newId(), values };
    if (cell) spec.after = cell.rowId;
    this._record({ kind: "insert", rows: [spec] });
    this._send([{ type: "insert_rows", rows: [placed(spec)] }]);
    // After the batch is staged (the tick's flush runs first), select the new row.
    queueMicrotask(() => this.select(cell ? cell.row + 1 : this.table.size - 1, cell?.col ?? 0));
    this.root.focus();
  }

  /** Delete the rows of the selected range. */
  deleteRows() {
    if (!this._editable({ type: "text" })) return;
    const rows = this.table.rows();
    const { top, bottom } = this.range();
    const gone = [];
    for (let r = top; r <= bottom && r < rows.length; r++) {
      gone.push({ id: rows[r].id, after: null, values: this._rowValues(rows[r].id) });
    }
    if (!gone.length) return;
    // Undo puts them back between the rows around the range (chained by relink()).
    if (top > 0) gone[0].after = rows[top - 1].id;
    else if (rows[bottom + 1]) gone[0].before = rows[bottom + 1].id;
    this._record({ kind: "delete", rows: gone });
    this._send([{ type: "delete_rows", rows: gone.map((g) => g.id) }]);
    this.anchor = null;
    this.root.focus();
  }

  /** Move the selected row one place up (-1) or down (+1). */
  moveRow(delta) {
    if (!this._editable({ type: "text" })) return;
    const rows = this.table.rows();
    const i = this.sel.row;
    const row = rows[i];
    const target = i + delta;
    if (!row || target < 0 || target >= rows.length) return;
    const from = i > 0 ? { after: rows[i - 1].id } : { before: rows[i + 1].id };
    const to = delta < 0 ? { before: rows[target].id } : { after: rows[target].id };
    this._record({ kind: "move", row: row.id, from, to });
    this._send([{ type: "move_row", row: row.id, ...to }]);
    this.selRowId = row.id; // the selection follows the row once the move commits
    this.render();
    this.root.focus();
  }

  _rowValues(rowId) {
    const values = {};
    for (const column of this.columns) {
      if (column.type === "formula") continue;
      const v = this.table.get(rowId, column.id);
      if (v !== null) values[column.id] = v;
    }
    return values;
  }

  // --- clipboard ---------------------------------------------------------------------

  _active(event) {
    return document.activeElement === this.root && !event.target.closest?.(".editor");
  }

  _copy(event) {
    if (!this._active(event)) return;
    const rows = this.table.rows();
    const { top, bottom, left, right } = this.range();
    const out = [];
    for (let r = top; r <= bottom && r < rows.length; r++) {
      const line = [];
      for (let c = left; c <= right; c++) {
        line.push(clipText(this.table.get(rows[r].id, this.columns[c].id)));
      }
      out.push(line);
    }
    event.clipboardData.setData("text/plain", toTsv(out));
    event.preventDefault();
  }

  _paste(event) {
    if (!this._active(event)) return;
    event.preventDefault();
    this.paste(event.clipboardData.getData("text/plain"));
  }

  /** Paste a TSV block at the selection: existing rows are updated, rows past the end are
   * inserted, all in one batch (one undo step). */
  paste(text) {
    if (!this._editable({ type: "text" })) return;
    const block = parseTsv(text);
    if (!block.length) return;
    const rows = this.table.rows();
    const start = rows.length ? this.sel : { row: 0, col: this.sel.col };
    const edits = [];
    const inserted = [];
    let lastId = rows.length ? rows[rows.length - 1].id : null;
    for (let i = 0; i < block.length; i++) {
      const values = {};
      for (let j = 0; j < block[i].length; j++) {
        const column = this.columns[start.col + j];
        if (!column || column.type === "formula") continue;
        try {
          values[column.id] = parseInput(block[i][j], column.type);
        } catch (err) {
          this.options.onMessage?.(
            `Nothing pasted: row ${i + 1}, ${column.name}: ${err.message}.`,
            "error",
          );
          return;
        }
      }
      const target = rows[start.row + i];
      if (target) {
        if (Object.keys(values).length) edits.push({ row: target.id, values });
      } else {
        const spec = { id: newId(), values: stripNulls(values) };
        if (lastId) spec.after = lastId;
        lastId = spec.id;
        inserted.push(spec);
      }
    }
    const before = edits.map(({ row, values }) => ({
      row,
      values: Object.fromEntries(Object.keys(values).map((k) => [k, this.table.get(row, k)])),
    }));
    this._record({ kind: "cells", before, after: edits, inserted });
    const ops = this._cellOps(edits);
    if (inserted.length) ops.push(...chunkInsert(inserted.map(placed)));
    this._send(ops);
    const width = Math.max(...block.map((r) => r.length));
    this.anchor = { row: start.row, col: start.col };
    this.sel = {
      row: start.row + block.length - 1,
      col: Math.min(this.columns.length - 1, start.col + width - 1),
    };
    this.selRowId = null;
    this.render();
  }

  // --- undo / redo -------------------------------------------------------------------

  _record(entry) {
    this.undoStack.push(entry);
    if (this.undoStack.length > 200) this.undoStack.shift();
    this.redoStack = [];
  }

  /** Undo the user's last edit with its inverse ops. */
  undo() {
    const entry = this.undoStack.pop();
    if (!entry) return;
    this._send(this._inverse(entry));
    this.redoStack.push(entry);
  }

  /** Redo the last undone edit. */
  redo() {
    const entry = this.redoStack.pop();
    if (!entry) return;
    this._send(this._forward(entry));
    this.undoStack.push(entry);
  }

  _inverse(entry) {
    switch (entry.kind) {
      case "cells": {
        const ops = this._cellOps(entry.before);
        if (entry.inserted.length) {
          ops.push({ type: "delete_rows", rows: entry.inserted.map((r) => r.id) });
        }
        return ops;
      }
      case "insert":
        return [{ type: "delete_rows", rows: entry.rows.map((r) => r.id) }];
      case "delete": {
        // A deleted row stays deleted: bring it back as a new row with the same values.
        for (const row of entry.rows) row.id = newId();
        relink(entry.rows);
        return chunkInsert(entry.rows.map(placed));
      }
      case "move":
        return [{ type: "move_row", row: entry.row, ...entry.from }];
      default:
        return [];
    }
  }

  _forward(entry) {
    switch (entry.kind) {
      case "cells": {
        const ops = this._cellOps(entry.after);
        if (entry.inserted.length) {
          for (const r of entry.inserted) r.id = newId();
          relink(entry.inserted);
          ops.push(...chunkInsert(entry.inserted.map(placed)));
        }
        return ops;
      }
      case "insert":
        for (const r of entry.rows) r.id = newId();
        relink(entry.rows);
        return chunkInsert(entry.rows.map(placed));
      case "delete":
        return [{ type: "delete_rows", rows: entry.rows.map((r) => r.id) }];
      case "move":
        return [{ type: "move_row", row: entry.row, ...entry.to }];
      default:
        return [];
    }
  }
}

function stripNulls(values) {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== null));
}

/** Re-chain `after` links of rows inserted together, once their ids were renewed. */
function relink(rows) {
  for (let i = 1; i < rows.length; i++) {
    rows[i].after = rows[i - 1].id;
    delete rows[i].before;
  }
}

/** The wire form of a row to (re)insert: {id, values, after? | before?}. */
function placed({ id, after, before, values }) {
  const spec = { id, values };
  if (after) spec.after = after;
  else if (before) spec.before = before;
  return spec;
}

function chunkInsert(rows) {
  const ops = [];
  for (let i = 0; i < rows.length; i += 1000)
    ops.push({ type: "insert_rows", rows: rows.slice(i, i + 1000) });
  return ops;
}

/** A HypertabError as a sentence a person can act on. */
export function describe(err, table) {
  const code = err?.code ?? "";
  const messages = {
    type_mismatch: "That value does not fit the column's type",
    read_only: "Formula columns are computed; edit the formula instead",
    row_deleted: "Someone deleted that row",
    unknown_row: "That row no longer exists",
    forbidden: "This key may not do that (read-only or limited to some tables)",
    formula_error: "The formula is not valid",
    column_exists: "A column with that name already exists",
    table_exists: "A table with that name already exists",
    over_plan_limit: "That edit is larger than the plan allows per minute; split it",
    store_failed: "The server cannot save right now (storage failure); tell its operator",
    store_conflict: "The server's database refused the write",
  };
  const base = messages[code] ?? "The edit was refused";
  const detail = err?.message && err.message !== code ? `: ${err.message}` : "";
  return `${base}${detail}.`;
}
