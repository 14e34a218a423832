// Datagrams per second (in and out) over the last five minutes, drawn on a canvas from the exact counters.

export class RateChart {
  constructor(canvas, seconds = 300) {
    this.canvas = canvas;
    this.seconds = seconds;
    this.points = [];
    this.previous = null;
  }

  // `totals` are cumulative counters; the rate is their change since the previous sample.
  sample(totals, now = Date.now() / 1000) {
    if (this.previous) {
      const dt = Math.max(0.001, now - this.previous.t);
      this.points.push({
        t: now,
        inRate: (totals.received - this.previous.received) / dt,
        outRate: (totals.sent - this.previous.sent) / dt,
        inBytes: (totals.receivedBytes - this.previous.receivedBytes) / dt,
      });
      while (this.points.length && this.points[0].t < now - this.seconds) this.points.shift();
    }
    this.previous = { t: now, received: totals.received, sent: totals.sent, receivedBytes: totals.receivedBytes };
    this.draw();
    return this.points[this.points.length - 1];
  }

  draw() {
    const c = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const w = c.clientWidth || c.width, h = c.clientHeight || c.height;
    if (c.width !== w * ratio) { c.width = w * ratio; c.height = h * ratio; }
    const g = c.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, w, h);
    const max = Math.max(1, ...this.points.map((p) => Math.max(p.inRate, p.outRate)));
    const top = niceCeil(max);
    const left = 44, bottom = h - 16;
    g.strokeStyle = "#e3e8ef";
    g.fillStyle = "#677384";
    g.font = "10px system-ui, sans-serif";
    for (let i = 0; i <= 4; i++) {
      const y = bottom - (bottom - 6) * (i / 4);
      g.beginPath(); g.moveTo(left, y); g.lineTo(w - 4, y); g.stroke();
      g.fillText(formatRate(top * i / 4), 2, y + 3);
    }
    g.fillText(`last ${this.seconds / 60} min`, left, h - 3);
    g.fillText("datagrams/s", w - 160, h - 3);
    g.fillStyle = "#0b6b2f";
    g.fillText("— in", w - 88, h - 3);
    g.fillStyle = "#c05a00";
    g.fillText("— out", w - 52, h - 3);
    const x = (t) => left + (w - 4 - left) * (1 - (this.points[this.points.length - 1].t - t) / this.seconds);
    const y = (v) => bottom - (bottom - 6) * (v / top);
    for (const [key, color] of [["inRate", "#0b6b2f"], ["outRate", "#c05a00"]]) {
      if (this.points.length < 1) break;
      g.strokeStyle = color;
      g.lineWidth = 1.5;
      g.beginPath();
      this.points.forEach((p, i) => (i ? g.lineTo(x(p.t), y(p[key])) : g.moveTo(x(p.t), y(p[key]))));
      g.stroke();
    }
  }
}

function niceCeil(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

export function formatRate(v) {
  if (v >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (v >= 1e3) return (v / 1e3).toFixed(1) + "k";
  return v >= 10 || v === 0 ? v.toFixed(0) : v.toFixed(1);
}

// Round-trip times of replies (seconds), counted into logarithmic buckets and drawn as bars.
const edges = [0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1];
const names = ["<0.1", "<0.3", "<1", "<3", "<10", "<30", "<100", "<300", "<1000", "≥1000"];

export function drawHistogram(canvas, seconds) {
  const counts = new Array(edges.length + 1).fill(0);
  for (const s of seconds) {
    let i = 0;
    while (i < edges.length && s >= edges[i]) i++;
    counts[i]++;
  }
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width, h = canvas.clientHeight || canvas.height;
  if (canvas.width !== w * ratio) { canvas.width = w * ratio; canvas.height = h * ratio; }
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, w, h);
  g.font = "10px system-ui, sans-serif";
  g.fillStyle = "#677384";
  const max = Math.max(1, ...counts);
  const bottom = h - 28, bar = (w - 8) / counts.length;
  counts.forEach((n, i) => {
    const height = (bottom - 12) * (n / max);
    g.fillStyle = "#2463c9";
    g.fillRect(4 + i * bar + 2, bottom - height, bar - 4, height);
    g.fillStyle = "#677384";
    if (n) g.fillText(String(n), 4 + i * bar + 2, bottom - height - 2);
    g.save();
    g.translate(4 + i * bar + bar / 2 - 3, h - 2);
    g.rotate(-Math.PI / 2);
    g.fillText(names[i], 0, 0);
    g.restore();
  });
  g.fillText(`round trips (ms), ${seconds.length}`, 4, 10);
}
