// The traffic log: a virtualised list. Only the rows in view exist in the DOM, so 100,000 rows scroll as smoothly
// as 10; the page keeps at most `limit` records (the oldest go first).

import { toHex } from "./bytes.js";

const ROW = 22;

function clock(t) {
  const d = new Date(t * 1000);
  const p = (n, w = 2) => String(n).padStart(w, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

export function remoteText(r) {
  return r.remoteAddress.includes(":") ? `[${r.remoteAddress}]:${r.remotePort}` : `${r.remoteAddress}:${r.remotePort}`;
}

export function marksText(r) {
  const marks = [...r.marks];
  if (r.truncated) marks.push("truncated");
  if (r.roundTrip != null) marks.push(`rtt ${(r.roundTrip * 1000).toFixed(2)} ms`);
  return marks.join(", ");
}

export class TrafficLog {
  constructor(view, spacer, onSelect, limit = 100000) {
    this.view = view;
    this.spacer = spacer;
    this.onSelect = onSelect;
    this.limit = limit;
    this.records = [];
    this.shown = [];
    this.filter = null;
    this.selected = null;
    this.pool = [];
    this.follow = true;
    this.pending = false;
    // How a record's payload becomes the text column (the server's escaped UTF-8 unless another encoding is chosen).
    this.textOf = (r) => r.text;
    view.addEventListener("scroll", () => {
      this.follow = view.scrollTop + view.clientHeight >= view.scrollHeight - ROW * 2;
      this.schedule();
    });
    new ResizeObserver(() => this.schedule()).observe(view);
  }

  add(records) {
    for (const r of records) {
      this.records.push(r);
      if (!this.filter || this.filter(r)) this.shown.push(r);
    }
    if (this.records.length > this.limit) {
      const drop = this.records.length - this.limit;
      const oldest = this.records[drop].id;
      this.records.splice(0, drop);
      let cut = 0;
      while (cut < this.shown.length && this.shown[cut].id < oldest) cut++;
      if (cut) this.shown.splice(0, cut);
    }
    this.schedule();
  }

  clear() {
    this.records = [];
    this.shown = [];
    this.selected = null;
    this.schedule();
  }

  redraw() {
    for (const row of this.pool) row.id = null;
    this.schedule();
  }

  setFilter(filter) {
    this.filter = filter;
    this.shown = filter ? this.records.filter(filter) : this.records.slice();
    this.schedule();
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.render();
    });
  }

  render() {
    const view = this.view;
    this.spacer.style.height = this.shown.length * ROW + "px";
    if (this.follow) view.scrollTop = view.scrollHeight;
    const first = Math.max(0, Math.floor(view.scrollTop / ROW) - 5);
    const count = Math.ceil(view.clientHeight / ROW) + 10;
    const last = Math.min(this.shown.length, first + count);
    while (this.pool.length < last - first) this.pool.push(this.makeRow());
    for (let i = 0; i < this.pool.length; i++) {
      const row = this.pool[i];
      const r = this.shown[first + i];
      if (!r || first + i >= last) {
        row.el.style.display = "none";
        continue;
      }
      row.el.style.display = "";
      row.el.style.top = (first + i) * ROW + "px";
      if (row.id !== r.id) this.fill(row, r);
      row.el.classList.toggle("selected", this.selected === r.id);
    }
  }

  makeRow() {
    const el = document.createElement("div");
    el.className = "log-row";
    const cells = {};
    for (const c of ["time", "dir", "local", "remote", "len", "text", "hex", "marks"]) {
      const span = document.createElement("span");
      span.className = "c-" + c;
      el.appendChild(span);
      cells[c] = span;
    }
    const row = { el, cells, id: null, record: null };
    el.addEventListener("click", () => {
      this.selected = row.record.id;
      this.onSelect(row.record);
      this.render();
    });
    this.spacer.appendChild(el);
    return row;
  }

  fill(row, r) {
    row.id = r.id;
    row.record = r;
    const c = row.cells;
    c.time.textContent = clock(r.time);
    c.dir.textContent = r.direction === "in" ? "IN" : "OUT";
    c.dir.className = "c-dir " + r.direction;
    c.local.textContent = String(r.localPort);
    c.remote.textContent = remoteText(r);
    c.len.textContent = String(r.length);
    c.text.textContent = this.textOf(r);
    c.hex.textContent = toHex(r.hex.match(/../g)?.map((h) => parseInt(h, 16)) || []);
    c.marks.textContent = marksText(r);
    row.el.title = r.text.length > 60 ? r.text.slice(0, 400) : "";
  }
}
